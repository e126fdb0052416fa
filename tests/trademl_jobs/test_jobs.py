"""The daily schedule asks for the session that just closed, and skips holidays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from trademl_jobs.definitions import defs, executor_for
from trademl_jobs.jobs import daily_schedule

NY = ZoneInfo("America/New_York")


def _evaluate(when: dt.datetime):
    ctx = dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    return daily_schedule.evaluate_tick(ctx)


def test_schedule_requests_the_session_that_closed():
    result = _evaluate(dt.datetime(2025, 7, 3, 18, 30, tzinfo=NY))  # early-close Thursday
    (request,) = result.run_requests
    assert request.partition_key == "2025-07-03"


def test_schedule_skips_a_holiday():
    result = _evaluate(dt.datetime(2025, 7, 4, 18, 30, tzinfo=NY))
    assert not result.run_requests
    assert "not a XNYS session" in result.skip_message


def test_executor_wiring_per_deployment():
    assert executor_for("local") is dg.in_process_executor
    assert executor_for("gpu").name == "multiprocess"
    with pytest.raises(RuntimeError, match="dagster-k8s"):
        executor_for("prod")
