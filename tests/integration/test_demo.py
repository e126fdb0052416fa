"""`make demo`'s entry point on a small market: runs, writes the lake and prints where."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.test_cli import REPO, _env

pytestmark = pytest.mark.integration


def test_demo_materializes_latest_session_and_reports_locations(tmp_path):
    env = _env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "trademl_jobs.demo", "--history", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    home = env["TRADEML_HOME"]
    for where in ("lake", "reports", "MLflow store", "Dagster home"):
        assert where in out
    assert f"{home}/lake" in out and f"sqlite:///{home}/mlflow.db" in out
    reports = list((tmp_path / "home" / "reports").glob("pipeline_*.json"))
    assert len(reports) == 1
    summary = json.loads(reports[0].read_text())
    assert summary["feature_rows"] == summary["bars_rows"] >= 7
    assert summary["features"] == 39
    assert summary["qc"] in {"GREEN", "YELLOW"}
    # trained, registered and judged; promoted or refused with reasons, never silently
    model = summary["equities_xs"]
    assert model["version"] == "1"
    assert model["why"]
    if model["promoted"]:
        assert summary["scored_by"] == ["1"] and summary["scores_rows"] == summary["bars_rows"]
    else:
        assert "fails" in model["why"] and summary["scores_rows"] == 0
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    # rotten apples, the forecaster and the policy: promoted or refused with reasons
    assert summary["oos_signals_rows"] > 0
    for sleeve in ("oos_forecaster", "grpo_policy"):
        assert summary[sleeve]["version"] == "1" and summary[sleeve]["why"]
    if summary["oos_forecaster"]["promoted"] and summary["grpo_policy"]["promoted"]:
        assert summary["policy_actions_rows"] == summary["bars_rows"]
        assert 0 < summary["mean_size"] < 2
    else:
        assert summary["policy_actions_rows"] == 0
    # the latest session's report, dry-run orders, blotter and backtest plots
    session = summary["session"]
    reports_dir = tmp_path / "home" / "reports"
    assert summary["report"] == str(reports_dir / f"equities_{session}.md")
    assert json.loads((reports_dir / f"equities_{session}.json").read_text())["session"] == session
    for plot in ("equity", "drawdown", "rolling_rank_ic", "turnover"):
        assert (reports_dir / f"equities_{session}_{plot}.png").stat().st_size > 1000
    assert summary["portfolio"]["longs"] > 0 and summary["portfolio"]["shorts"] > 0
    orders = summary["orders"]
    assert orders["count"] > 0 and summary["blotter_rows"] == orders["count"]
    assert set(orders["status"]) <= {"submitted", "halted"}
    assert ("halted" in orders["status"]) == bool(orders["halted_because"])
    blotter = tmp_path / "home" / "broker" / f"date={session}" / "blotter.csv"
    assert blotter.read_text().startswith("session,client_order_id")
    assert "blotter" in out
