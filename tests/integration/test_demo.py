"""`make demo`'s entry point end to end on small markets, as a user runs it.

A planted market where two sleeves each see one of two signals: both promoted, the stacker
promoted over them, and the orders come from the stacker's book. A noise market: nothing is
promoted anywhere, the book trades the fit-free fallback, and the summary and the report say
so. (Small windows cannot support the strict PBO/DSR bars, so the planted run relaxes those
two; the noise run keeps every bar as the demo has it.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resources.lake import Lake
from tests.integration.test_cli import REPO
from trademl.config import FeatureConfig
from trademl.features.registry import required_history

pytestmark = pytest.mark.integration

SMALL = """
extends: local
data: {{symbols: 40, seed: 11, alpha: {{mode: {mode}, target_ic: 0.15, reversal_ic: {reversal}}}}}
equities:
  models: [lgbm, catboost]
  features: {{lgbm: [mom_20, xs_rank_mom_20, xs_z_mom_20, mom_60],
             catboost: [mom_5, xs_rank_mom_5, xs_z_mom_5, gap_1]}}
  train_sessions: 160
  n_trials: 2
  n_estimators: 40
  n_groups: 6
  embargo: 5
  promotion: {promotion}
linear: {{enabled: false}}
stacker: {{sleeves: [equities_lgbm, equities_catboost], promotion: {stacker}}}
forecasts: {{train_sessions: 60, input_size: 16, max_steps: 10, hidden_size: 16,
            nhits_mlp_units: 16, windows_batch_size: 32, vol_window: 5, trend_window: 5}}
policy: {{train_sessions: 60, epochs: 3, batch_size: 512, hidden: [8], patience: 1}}
offline_rl: {{train_sessions: 60, n_steps: 300, n_boot: 200}}
backtest: {{sessions: 60}}
{theses}
"""
RELAXED = "{min_path_sharpe: 0.0, max_drawdown: 1.0, min_dsr: 0.0, max_pbo: 1.0}"


def _run(cfg_text: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m trademl_jobs.demo` with `cfg_text` as TRADEML_CONFIG and a home of its own."""
    cfg = home.parent / f"{home.name}.yaml"
    cfg.write_text(cfg_text)
    env = {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(home / "dagster"),
        "TRADEML_ENV": "local",
    }
    return subprocess.run(
        [sys.executable, "-m", "trademl_jobs.demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _demo(tmp_path: Path, **fmt: str) -> tuple[dict, Path, str]:
    home = tmp_path / "home"
    proc = _run(SMALL.format(**fmt), home)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (summary_path,) = (home / "reports").glob("pipeline_*.json")
    return json.loads(summary_path.read_text()), home, proc.stdout


def test_planted_market_promotes_sleeves_and_the_stacker_and_trades_its_book(tmp_path):
    summary, home, out = _demo(
        tmp_path,
        mode="planted",
        reversal="0.15",
        promotion=RELAXED,
        stacker="{max_pbo: 1.0, min_dsr: 0.0}",
        # a walk-forward that fits the short window, and bars a demo-sized model can pass
        theses="theses: {fold_train: 60, fold_test: 25, sft_epochs: 5, rft_epochs: 5,"
        " promotion: {margin: -100.0, min_sharpe: -100.0}}",
    )
    sleeves = summary["sleeves"]
    assert sleeves["equities_lgbm"]["promoted"] and sleeves["equities_catboost"]["promoted"]
    stk = sleeves["stacker"]
    assert stk["promoted"], stk["why"]
    assert stk["oos_rank_ic"] > stk["best_sleeve_rank_ic"]
    served = summary["served"]
    assert served["path"] == "stacker"
    assert served["models"] == {"equities_lgbm": "1", "equities_catboost": "1", "stacker": "1"}
    orders = summary["orders"]
    assert orders["count"] > 0 and set(orders["status"]) <= {"submitted", "halted"}
    assert summary["blotter_rows"] == orders["count"]
    assert "come from models that earned their place" in summary["verdict"]
    assert summary["verdict"] in out
    # the offline RL sizing policy was trained on the logged book and judged by OPE: the
    # verdict with its interval is printed, promoted or not
    rl = sleeves["offline_rl"]
    assert rl["version"] is not None and rl["ope_dr_lo"] <= rl["ope_dr"] <= rl["ope_dr_hi"]
    assert f"Offline RL sizing v{rl['version']}: doubly robust value" in out
    assert rl["why"] in out
    md = Path(summary["report"]).read_text()
    assert "Served by **stacker**" in md and "stacker v1" in md
    assert "Champion vs challengers" in md
    # the thesis model trained, passed (relaxed) bars, and wrote the top picks' theses
    thesis = sleeves["thesis"]
    assert thesis["promoted"] and thesis["rft_validity"] >= 0.9, thesis
    assert "Theses of the top picks (validated against the thesis schema)" in md
    session = summary["session"]
    for plot in ("equity", "drawdown", "rolling_rank_ic", "turnover"):
        assert (home / "reports" / f"equities_{session}_{plot}.png").stat().st_size > 1000
    for where in ("lake", "reports", "MLflow store", "Dagster home"):
        assert where in out


@pytest.fixture(scope="module")
def noise_demo(tmp_path_factory):
    return _demo(
        tmp_path_factory.mktemp("noise"),
        mode="noise",
        reversal="0.0",
        promotion="{min_path_sharpe: 1.0, max_drawdown: 0.20, min_dsr: 0.95, max_pbo: 0.05}",
        stacker="{}",
        theses="",  # the default walk-forward does not fit: "not trained", said so
    )


def test_noise_market_promotes_nothing_anywhere_and_trades_the_fallback(noise_demo):
    summary, _, out = noise_demo
    for name, sleeve in summary["sleeves"].items():
        assert not sleeve["promoted"], (name, sleeve)
        assert sleeve["why"], name  # every refusal says why
    assert summary["served"]["path"] == "fit_free"
    assert summary["served"]["models"] == {"fit_free": "mom_12_1"}
    assert "No model earned its place" in summary["verdict"] and summary["verdict"] in out
    md = Path(summary["report"]).read_text()
    assert "FIT-FREE fallback feature" in md
    assert summary["orders"]["count"] > 0  # the fallback still trades, labelled as such


FILES = """
extends: local
data: {{source: files, path: {path}, start: 2020-07-01}}
equities: {{models: [lgbm], n_trials: 2, n_estimators: 30, n_groups: 6, embargo: 5}}
linear: {{alphas: [0.1, 10.0]}}
forecasts: {{train_sessions: 60, input_size: 16, max_steps: 5, hidden_size: 16,
            nhits_mlp_units: 16, windows_batch_size: 32, vol_window: 5, trend_window: 5}}
policy: {{train_sessions: 60, epochs: 2, batch_size: 512, hidden: [8], patience: 1}}
backtest: {{sessions: 60}}
"""


def test_your_own_files_run_as_of_their_last_session_with_one_command(tmp_path):
    """20 names of bars in one parquet file ending on a past session: the demo finds that
    session itself, works out every window, and writes the report as of it."""
    import datetime as dt

    from trademl.data.calendar import get_calendar
    from trademl.data.synthetic import SyntheticMarket, SyntheticSpec

    end = dt.date(2022, 12, 28)
    cal = get_calendar("XNYS", dt.date(2020, 1, 2))
    spec = SyntheticSpec(n_symbols=20, seed=5, start=dt.date(2020, 7, 1), target_ic=0.1)
    bars = SyntheticMarket(spec, cal).load(end=end)
    data = tmp_path / "bars.parquet"
    bars.write_parquet(data)
    home = tmp_path / "home"
    late = _run(FILES.format(path=data), home, "--as-of", "2023-01-05")
    assert late.returncode != 0
    assert "your data ends 2022-12-28; run with --as-of 2022-12-28" in late.stderr
    proc = _run(FILES.format(path=data), home)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "as of session 2022-12-28 (a past session" in proc.stdout
    (path,) = (home / "reports").glob("pipeline_*.json")
    summary = json.loads(path.read_text())
    assert summary["session"] == "2022-12-28" and summary["bars_rows"] == 20
    # no training window configured: all the history the files hold, after the features'
    # warm-up and the forecasters' own 60 training sessions, goes to the CPCV sleeves
    held = cal.sessions_in_range(dt.date(2020, 7, 1), end)
    usable = held[required_history(FeatureConfig().ffill_limit) + 60 :]
    assert summary["training"] == {
        "setting": "{'synthetic': 500, 'files': 'all'}",
        "sessions": len(usable),
        "first": usable[0].isoformat(),
        "last": "2022-12-28",
    }
    assert f"Training on {len(usable)} sessions, {usable[0]} … 2022-12-28" in proc.stdout
    oof = Lake(home / "lake").scan_all("equities_lgbm_oof").collect()
    # labels are partitioned by t1: the first ones known in the window are of features
    # horizon 5 + execution lag 1 = 6 sessions earlier
    assert oof.get_column("date").min() == held[held.index(usable[0]) - 6]
    assert oof.get_column("date").n_unique() > 0.8 * len(usable)
    assert (home / "reports" / "equities_2022-12-28.md").exists()
    # 20 names over the ~370 sessions with exact features cannot reach the bars (2 × SE =
    # 2/√(19 × 370/5) ≈ 0.054 > 0.05), and the summary says so
    assert "universe_sufficient" in summary["qc_detail"]
    # a past session's orders are planned and halted, never sent late
    assert set(summary["orders"]["status"]) == {"halted"}


def test_the_ui_shows_the_graph_an_asset_s_metadata_and_a_refused_gate_s_reasons(noise_demo):
    """Headless Chromium on `dagster dev` over the noise demo's home: the asset graph, a
    partitioned asset's page with its metadata, and the refused promotion gate's check page
    with the bars that failed — as a person sees them (screenshots kept beside the home)."""
    from tests.integration.ui import chromium, dagster_dev, render

    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed and cannot be (apt-get needs root)")
    summary, home, _ = noise_demo
    env = {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(home.parent / f"{home.name}.yaml"),
        "DAGSTER_HOME": str(home / "dagster"),
        "TRADEML_ENV": "local",
    }
    shots = home / "screens"
    shots.mkdir()
    session = summary["session"]
    with dagster_dev(env, home / "dagster-dev.log") as base:
        graph = render(browser, f"{base}/asset-groups", shots / "graph.png")
        assert {"data", "features", "portfolio", "sizing", "execution"} <= set(graph.split())
        catalog = render(browser, f"{base}/assets", shots / "catalog.png")
        assert {"alpha_scores", "backtest", "bars"} <= set(catalog.split())  # the first rows
        page = render(
            browser, f"{base}/assets/target_weights?partition={session}", shots / "tw.png"
        )
        assert "target_weights" in page and "Partitions" in page
        assert "rows" in page  # the materialization's metadata
        gate = render(browser, f"{base}/assets/equities_lgbm_model?view=checks", shots / "gate.png")
        assert "promotion_gate" in gate
        assert "fails" in gate  # the failed bars, each with its value and threshold
    for png in ("graph.png", "catalog.png", "tw.png", "gate.png"):
        assert (shots / png).stat().st_size > 10_000
