"""The daily schedule asks for the session that just closed, and skips holidays."""

from __future__ import annotations

import datetime as dt
import sys
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from trademl_jobs.definitions import defs, executor_for
from trademl_jobs.jobs import daily_schedule, reconciliation_schedule

NY = ZoneInfo("America/New_York")


def _evaluate(when: dt.datetime, schedule: dg.ScheduleDefinition = daily_schedule):
    ctx = dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(ctx)


def test_schedule_requests_the_session_that_closed():
    result = _evaluate(dt.datetime(2025, 7, 3, 18, 30, tzinfo=NY))  # early-close Thursday
    (request,) = result.run_requests
    assert request.partition_key == "2025-07-03"


def test_schedule_skips_a_holiday():
    result = _evaluate(dt.datetime(2025, 7, 4, 18, 30, tzinfo=NY))
    assert not result.run_requests
    assert "not a XNYS session" in result.skip_message


def test_reconciliation_runs_after_the_orders_executed():
    """Orders planned at Thursday's close execute on Friday: Friday 16:30 reconciles Thursday;
    the Monday after Good Friday reconciles Thursday's orders, which executed on Monday."""
    (req,) = _evaluate(
        dt.datetime(2025, 4, 17, 16, 30, tzinfo=NY), reconciliation_schedule
    ).run_requests
    assert req.partition_key == "2025-04-16"
    holiday = _evaluate(dt.datetime(2025, 4, 18, 16, 30, tzinfo=NY), reconciliation_schedule)
    assert not holiday.run_requests and "nothing traded" in holiday.skip_message
    (req,) = _evaluate(
        dt.datetime(2025, 4, 21, 16, 30, tzinfo=NY), reconciliation_schedule
    ).run_requests
    assert req.partition_key == "2025-04-17"


def test_executor_wiring_per_deployment(monkeypatch):
    assert executor_for("local") is dg.in_process_executor
    assert executor_for("gpu").name == "multiprocess"
    assert executor_for("prod").name == "k8s"  # dagster-k8s is a dev dependency
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # an install without the prod extra
    with pytest.raises(RuntimeError, match="dagster-k8s"):
        executor_for("prod")


def test_a_copied_home_gets_an_instance_file_pointing_at_itself(tmp_path, monkeypatch):
    """dagster.yaml is rewritten for the home in force: a copy of a home never keeps writing
    into the original's storage."""
    import shutil

    from trademl.config import load_settings
    from trademl_jobs.instance import ensure_dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    first = tmp_path / "first"
    monkeypatch.setenv("TRADEML_HOME", str(first))
    ensure_dagster_home(load_settings())
    assert f"{first}/dagster/storage" in (first / "dagster" / "dagster.yaml").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    monkeypatch.setenv("TRADEML_HOME", str(copy))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    ensure_dagster_home(load_settings())
    text = (copy / "dagster" / "dagster.yaml").read_text()
    assert f"{copy}/dagster/storage" in text and str(first) not in text


@pytest.mark.parametrize("env", ["local", "gpu", "prod"])
def test_every_deployments_instance_file_validates_offline(tmp_path, env):
    """The dagster.yaml each deployment writes passes Dagster's own schema (a misspelled key
    fails here, not on a host); the local and gpu ones name our batched sqlite storage and
    the gpu one limits the `gpu` pool to one step at a time."""
    from dagster._core.instance.config import dagster_instance_config

    from trademl.config import CONFIG_DIR

    text = (CONFIG_DIR / f"dagster.{env}.yaml").read_text()
    (tmp_path / "dagster.yaml").write_text(text.replace("${TRADEML_HOME}", str(tmp_path)))
    config, _ = dagster_instance_config(str(tmp_path))
    if env in ("local", "gpu"):
        assert config["storage"]["custom"]["class"] == "BatchedSqliteStorage"
    if env == "gpu":
        assert config["concurrency"]["pools"]["default_limit"] == 1
    bad = text.replace("storage:", "storrage:", 1)
    (tmp_path / "dagster.yaml").write_text(bad.replace("${TRADEML_HOME}", str(tmp_path)))
    with pytest.raises(Exception, match="storrage"):
        dagster_instance_config(str(tmp_path))


def test_broker_steps_retry_and_training_steps_do_not():
    """Orders and the blotter talk to a broker and retry (idempotent submission); a GPU
    training step never retries (a failure there is an error to read, not a blip)."""
    from trademl_assets.registry import ALPHA, SIZING
    from trademl_jobs.definitions import defs

    def policy(key: str) -> dg.RetryPolicy | None:
        return defs.resolve_assets_def(dg.AssetKey(key)).op.retry_policy

    for key in ("orders", "blotter"):
        assert policy(key) is not None and policy(key).max_retries == 2, key
    for sp in [*ALPHA, *SIZING]:
        assert policy(sp.model_key) is None, sp.model_key
