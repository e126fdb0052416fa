"""alpha_scores → target_weights → sized_weights → backtest → daily_report → orders →
blotter as Dagster assets.

One module-scoped lake: bars/features for the backtest window on a 12-name synthetic market
(no champion alpha, so the router serves the configured fit-free fallback), then the
portfolio and execution assets for the latest session, against the dry-run broker and a
local fake of Alpaca's trading API.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from resources.broker import BrokerResource
from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource
from tests.trademl.execution.fake_alpaca import FakeAlpaca
from trademl_assets.partitions import BACKTEST_WINDOW, FEATURE_WINDOW, SESSIONS, SETTINGS
from trademl_assets.registry import ALPHA
from trademl_jobs.definitions import ASSETS, defs

KEYS = SESSIONS.get_partition_keys()
LATEST = KEYS[-1]
BOOK = [*[sp.scores_key for sp in ALPHA], "alpha_scores", "target_weights", "sized_weights"]
RANGE = {"start": "dagster/asset_partition_range_start", "end": "dagster/asset_partition_range_end"}
KEY_ID, SECRET = "PKTESTKEY0123456789", "s3cr3t-SECRET-value-987654321"


class Env:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.lake = Lake(home / "lake")
        store = LakeResource(root=str(home / "lake"))
        self.resources = {
            **defs.resources,
            "lake": LakeIOManager(store=store),
            "lake_store": store,
            "market_data": MarketDataResource(n_symbols=12, seed=5),
            "mlflow": MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}"),
        }

    def run(self, keys: list[str], selection: list[str], **resources) -> dg.ExecuteInProcessResult:
        tags = {RANGE["start"]: keys[0], RANGE["end"]: keys[-1]} if len(keys) > 1 else {}
        return dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=keys[0] if len(keys) == 1 else None,
            tags=tags,
            instance=dg.DagsterInstance.ephemeral(),
            resources={**self.resources, **resources},
            raise_on_error=False,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    home = Path(str(SETTINGS.home))  # reports go to $TRADEML_HOME/reports (the test home)
    e = Env(tmp_path_factory.mktemp("trade"))
    e.reports = home / "reports"
    window = KEYS[-BACKTEST_WINDOW:]
    assert e.run(KEYS[-(BACKTEST_WINDOW + FEATURE_WINDOW) :], ["bars"]).success
    r = e.run(window, ["features", *BOOK, "shadow_weights"])
    assert r.success
    return e


def test_target_weights_hold_the_caps_and_are_dollar_neutral(env: Env) -> None:
    w = env.lake.scan("target_weights", KEYS[-BACKTEST_WINDOW:]).collect()
    assert w.get_column("source").unique().to_list() == ["fit_free"]  # no champion
    assert w.get_column("models").unique().to_list() == ['{"fit_free": "mom_12_1"}']
    per = w.group_by("date").agg(
        pl.col("weight").sum().alias("net"),
        pl.col("weight").abs().sum().alias("gross"),
        pl.col("weight").abs().max().alias("max"),
        (pl.col("weight") > 0).sum().alias("longs"),
    )
    assert per.height == BACKTEST_WINDOW
    assert per.get_column("net").abs().max() < 1e-12
    assert per.get_column("gross").max() <= SETTINGS.portfolio.gross_cap + 1e-12
    assert per.get_column("max").max() <= SETTINGS.portfolio.name_cap + 1e-12
    assert per.get_column("longs").min() > 0
    # the highest-momentum name of a session is long, the lowest short
    day = w.filter(pl.col("date") == pl.col("date").max()).sort("score")
    assert day.get_column("weight")[0] < 0 < day.get_column("weight")[-1]


def test_backtest_report_orders_and_blotter_of_the_latest_session(env: Env) -> None:
    r = env.run([LATEST], ["shadow_books", "backtest", "daily_report", "orders", "blotter"])
    assert r.success
    bt = env.lake.scan("backtest", [LATEST]).collect()
    assert bt.height == BACKTEST_WINDOW and bt.get_column("date").unique().to_list() == [
        pl.Series([LATEST]).str.to_date()[0]
    ]
    assert (bt.get_column("costs") >= 0).all() and bt.get_column("equity").is_finite().all()
    # the last decision has no fill yet; its realized rank IC is not yet known
    assert bt.get_column("rank_ic")[-1] is None or not bt.get_column("rank_ic").is_finite()[-1]
    # no decision precedes the window; the first one fills at the next session's open
    assert bt.get_column("turnover")[0] == 0.0 < bt.get_column("turnover")[1]

    report = json.loads((env.reports / f"equities_{LATEST}.json").read_text())
    assert report["session"] == LATEST and report["qc"]["status"] in {"GREEN", "YELLOW"}
    assert report["signal_sources"] == ["fit_free"]
    assert report["serving"] == {
        "path": "fit_free",
        "models": {"fit_free": "mom_12_1"},
        "sizer": "identity",
        "n_trials": 1,
    }
    assert [b["book"] for b in report["shadow_books"]] == ["served"]  # no challenger at all
    # a fit-free fallback was searched once: its DSR deflates for one trial (= PSR)
    assert bt.get_column("n_trials").unique().to_list() == [1]
    assert report["backtest"]["n_trials"] == 1
    assert report["positions"]["long"] > 0 and report["positions"]["short"] > 0
    assert report["expected_costs"]["total"] > 0
    md = (env.reports / f"equities_{LATEST}.md").read_text()
    assert f"# Equities — {LATEST}" in md and "Top longs" in md
    assert "FIT-FREE fallback feature" in md and "no model has earned its place" in md
    bench = report["backtest"]["benchmark_return"]
    assert bench == pytest.approx(bt.get_column("benchmark_equity")[-1] - 1.0)
    assert f"vs the equal-weight market {bench:.2%}" in md  # the benchmark beside the book
    for plot in ("equity", "drawdown", "rolling_rank_ic", "turnover"):
        assert (env.reports / f"equities_{LATEST}_{plot}.png").read_bytes()[
            :8
        ] == b"\x89PNG\r\n\x1a\n"
    mlflow = env.resources["mlflow"]
    runs = mlflow.client().search_runs(
        [mlflow._experiment_id(mlflow.client())],
        filter_string="tags.`dagster.asset` = 'daily_report'",
    )
    assert runs and runs[0].info.status == "FINISHED"
    arts = {a.path for a in mlflow.client().list_artifacts(runs[0].info.run_id, "report")}
    assert f"report/equities_{LATEST}_equity.png" in arts

    o = env.lake.scan("orders", [LATEST]).collect()
    weights = env.lake.scan("sized_weights", [LATEST]).collect()
    assert o.height == (weights.get_column("weight") != 0).sum()  # a flat book: one per name
    assert set(o.get_column("status").to_list()) == {"submitted"}
    assert o.get_column("client_order_id").n_unique() == o.height
    slices = json.loads(o.get_column("slices")[0])
    assert sum(s["qty"] for s in slices) == o.get_column("qty")[0]
    b = env.lake.scan("blotter", [LATEST]).collect()
    assert sorted(b.get_column("client_order_id").to_list()) == sorted(
        o.get_column("client_order_id").to_list()
    )

    # re-running the partition is exactly once: the same ids, nothing new recorded
    again = env.run([LATEST], ["orders"])
    assert again.success
    o2 = env.lake.scan("orders", [LATEST]).collect()
    assert o2.get_column("client_order_id").to_list() == o.get_column("client_order_id").to_list()
    assert set(o2.get_column("status").to_list()) == {"already_present"}


def test_orders_for_a_past_session_are_halted(env: Env) -> None:
    past = KEYS[-2]
    r = env.run([past], ["orders"])
    assert r.success
    o = env.lake.scan("orders", [past]).collect()
    assert o.height > 0 and set(o.get_column("status").to_list()) == {"halted"}
    assert "not the latest completed session" in o.get_column("reason")[0]


def test_alpaca_paper_end_to_end_exactly_once_and_the_key_never_leaks(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    with FakeAlpaca(key=KEY_ID, secret=SECRET, cash=1_000_000.0) as fake:
        broker = BrokerResource(kind="alpaca", base_url=fake.url)
        results = [env.run([LATEST], ["orders", "blotter"], broker=broker) for _ in range(3)]
        assert all(r.success for r in results)
        symbols = [o["symbol"] for o in fake.orders.values()]
        assert symbols and len(symbols) == len(set(symbols))  # exactly one order per symbol
        o = env.lake.scan("orders", [LATEST]).collect()
        assert sorted(fake.orders) == sorted(o.get_column("client_order_id").to_list())
        events = [str(e) for r in results for e in r.all_events]
    blob = "\n".join(events) + caplog.text
    for path in env.home.rglob("*"):
        if path.is_file():
            blob += path.read_bytes().decode("latin-1")
    for path in env.reports.rglob("*"):
        if path.is_file():
            blob += path.read_bytes().decode("latin-1")
    assert KEY_ID not in blob and SECRET not in blob


def test_the_first_report_trades_from_a_flat_book(env: Env) -> None:
    """The earliest session with target weights has no previous book: the report prices the
    trades from flat (gross of the book), and a session without weights fails and says so."""
    first = KEYS[-BACKTEST_WINDOW]
    assert env.run([first], ["shadow_books", "backtest", "daily_report"]).success
    report = json.loads((env.reports / f"equities_{first}.json").read_text())
    gross = report["positions"]["gross"]
    traded = report["expected_costs"]["traded_notional"]
    assert traded == pytest.approx(gross * SETTINGS.backtest.initial_capital, rel=1e-9)
    # a session with neither its own nor a previous book fails and names the input
    before = KEYS[-BACKTEST_WINDOW - 1]
    for asset in ("backtest", "shadow_books"):
        env.lake.write_partitions(
            asset,
            env.lake.scan(asset, [first])
            .collect()
            .with_columns(pl.lit(before).str.to_date().alias("date")),
            [before],
            "date",
        )
    r = env.run([before], ["daily_report"])
    assert not r.success
    (failure,) = [e for e in r.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    assert "sized_weights" in str(error.cause) and "is written" in str(error.cause)


def test_the_trade_job_replays_past_sessions_and_reconciles_with_the_engine(env: Env) -> None:
    """`execution.broker: replay`: past sessions' orders fill at the next session's open
    (live brokers halt them), and the replay's P&L is the engine's on the filled book."""
    import shutil

    from trademl.execution.replay_run import backtest_on_fills, reconcile
    from trademl_assets.execution import broker_dir
    from trademl_assets.partitions import CALENDAR

    folder = Path(broker_dir(SETTINGS)) / "replay"
    shutil.rmtree(folder, ignore_errors=True)
    broker = BrokerResource(kind="replay")
    past = KEYS[-8:-2]
    for key in past:
        assert env.run([key], ["orders", "blotter"], broker=broker).success
        o = env.lake.scan("orders", [key]).collect()
        assert o.height > 0 and "halted" not in set(o.get_column("status").to_list()), key
    view = broker.get_broker(broker_dir(SETTINGS))
    assert view.as_of is not None and view.as_of.isoformat() == past[-1]
    keys = KEYS[-8:-1]
    bars = env.lake.scan("bars", keys).collect()
    risk = (
        env.lake.scan("sized_weights", keys[:-1]).collect().select("date", "symbol", "adv", "sigma")
    )
    gap = reconcile(view.pnl(), backtest_on_fills(view, bars, risk, CALENDAR), view.capital)
    assert gap.height >= len(past) - 1 and gap.get_column("diff").abs().max() < 1e-6
    assert gap.get_column("replay_net").abs().sum() > 0  # it traded and made or lost money
    shutil.rmtree(folder)


def test_rl_trajectories_log_each_session_once_from_a_window(env: Env) -> None:
    """`rl_trajectories` over a range equals the same sessions logged one by one (a row's
    state comes from a fixed window, never from what was written after it); every row's
    reward became known on its partition's session, lag + 1 sessions after the decision."""
    from polars.testing import assert_frame_equal

    from trademl.models.offline_rl.env import reward
    from trademl.params import reward_config
    from trademl_assets.partitions import CALENDAR

    keys = KEYS[-12:-2]
    assert env.run(keys, ["rl_trajectories"]).success
    ranged = env.lake.scan("rl_trajectories", keys).collect()
    assert ranged.height > 0 and set(ranged["known"].cast(pl.String)) <= set(keys)
    lag = SETTINGS.backtest.execution_lag
    for row in ranged.head(20).iter_rows(named=True):
        assert CALENDAR.index(row["known"]) - CALENDAR.index(row["session"]) == lag + 1
    buckets = np.asarray(SETTINGS.offline_rl.buckets)
    again = reward(
        buckets[ranged["action"].to_numpy()],
        ranged["exposure"].to_numpy(),
        ranged["y"].to_numpy(),
        ranged["prev_position"].to_numpy(),
        reward_config(SETTINGS),
    )
    assert np.allclose(again, ranged["reward"].to_numpy())
    probs = ranged.select(pl.sum_horizontal(pl.col("^prob_.*$"))).to_series()
    assert np.allclose(probs.to_numpy(), 1.0)
    one = keys[5]
    assert env.run([one], ["rl_trajectories"]).success
    single = env.lake.scan("rl_trajectories", [one]).collect()
    assert_frame_equal(
        single, ranged.filter(pl.col("known") == dt.date.fromisoformat(one)), rel_tol=1e-9
    )


def test_the_offline_rl_sleeve_trains_judges_and_sizes_from_the_log(env: Env) -> None:
    """rl_trajectories → offline_rl_policy (CQL, OPE + replay gate) → champion when it
    passes; the run succeeds either way with the verdict's figures in the model row, and a
    promoted policy sizes the book from the states the log recorded (buckets of the weight)."""
    keys = KEYS[-(BACKTEST_WINDOW - 2) :]
    assert env.run(keys, ["rl_trajectories"]).success
    r = env.run([LATEST], ["offline_rl_policy", "offline_rl_champion"])
    assert r.success
    row = env.lake.scan("offline_rl_policy", [LATEST]).collect().row(0, named=True)
    book = ("book_sharpe_sized", "book_sharpe_unsized")  # the platform's backtest, caps on
    for k in ("ope_dr", "ope_dr_lo", "ope_dr_hi", "ope_behaviour", "replay_improvement_t", *book):
        assert row[k] is not None and np.isfinite(row[k]), k
    assert row["ope_dr_lo"] <= row["ope_dr"] <= row["ope_dr_hi"]
    assert row["verdict"]  # promoted or not, it says why
    # the model asset links to its MLflow run and registered version (and back: tag above)
    (mat,) = [
        e.materialization
        for e in r.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "offline_rl_policy"
    ]
    run_url = mat.metadata["mlflow_run"].value
    assert run_url.startswith("http://127.0.0.1:5000/#/experiments/")
    assert run_url.endswith(f"/runs/{row['run_id']}")
    assert mat.metadata["mlflow_model_version"].value.endswith(
        f"/#/models/offline_rl/versions/{row['version']}"
    )
    tags = env.resources["mlflow"].client().get_run(row["run_id"]).data.tags
    assert tags["dagster.asset_url"].endswith(f"?partition={LATEST}")
    # the evaluation suite on the held-out decisions: positions vs realized returns
    metrics = env.resources["mlflow"].client().get_run(row["run_id"]).data.metrics
    assert metrics["eval_coverage"] == 1.0 and metrics["eval_periods"] > 0
    checks = {e.check_name: e for e in r.get_asset_check_evaluations()}
    assert checks and all(e.metadata for e in checks.values())
    # the served sizer: load the registered ONNX policy and size today's book with it
    from trademl_assets.offline_rl import RLSizer
    from trademl_assets.policy import history_upto, sizing_inputs

    mlflow = env.resources["mlflow"]
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.download(f"models:/offline_rl/{row['version']}", Path(tmp) / "m")
        sizer = RLSizer(path)
        lazy = {k: env.lake.scan(k, KEYS[-60:]) for k in ("target_weights", "features", "bars")}
        window = sizing_inputs(
            lazy["target_weights"], lazy["features"], lazy["bars"], SETTINGS, env.lake, [LATEST]
        )
        day = window[0].filter(pl.col("date") == dt.date.fromisoformat(LATEST))
        sizes = sizer.sizes_for(day, history_upto(window, dt.date.fromisoformat(LATEST)), SETTINGS)
    assert sizes.shape == (day.height,) and set(np.unique(sizes)) <= set(
        SETTINGS.offline_rl.buckets
    )


def test_participation_rates_log_train_and_size_the_book_from_the_held_positions(
    env: Env, tmp_path: Path
) -> None:
    """`offline_rl.action: participation` on a copy of the lake: the log carries each trade's
    share of the day's dollar volume and rewards priced with impact on the positions the
    behaviour's rates left; the policy trains and is judged; `sized_weights` moves each name
    from the position the traded book held the session before by the served rate."""
    import shutil

    from resources.settings import SettingsResource
    from trademl.config import load_settings
    from trademl.models.offline_rl.env import position, reward
    from trademl.params import reward_config

    cfg_file = tmp_path / "participation.yaml"
    cfg_file.write_text(
        "extends: local\noffline_rl: {action: participation, buckets: [0.25, 0.5, 1.0]}\n"
    )
    s = load_settings(cfg_file)
    cfg = reward_config(s)
    assert cfg.action == "participation" and cfg.impact_coef == s.costs.impact_coef
    shutil.copytree(env.home / "lake", tmp_path / "lake")
    shutil.rmtree(tmp_path / "lake" / "rl_trajectories", ignore_errors=True)  # a new table id
    lake = Lake(tmp_path / "lake")
    store = LakeResource(root=str(tmp_path / "lake"))
    copy = {
        "lake": LakeIOManager(store=store),
        "lake_store": store,
        "settings": SettingsResource(config_path=str(cfg_file)),
    }
    keys = KEYS[-(BACKTEST_WINDOW - 2) :]
    assert env.run(keys, ["rl_trajectories"], **copy).success
    log = lake.scan("rl_trajectories", keys).collect().sort("symbol", "session")
    assert "adv_share" in log.columns and (log["adv_share"] > 0).all()
    rate = np.asarray(cfg.buckets)[log["action"].to_numpy()]
    w, prev = log["exposure"].to_numpy(), log["prev_position"].to_numpy()
    again = reward(
        rate,
        w,
        log["y"].to_numpy(),
        prev,
        cfg,
        vol=log["vol"].to_numpy(),
        adv_share=log["adv_share"].to_numpy(),
    )
    assert np.allclose(again, log["reward"].to_numpy())
    # a name logged the session before continues from the position the logged rate left it
    from trademl_assets.partitions import CALENDAR

    nxt = (
        log.with_columns(pl.Series("left", position(rate, w, prev, cfg)))
        .with_columns(
            pl.col("left").shift(1).over("symbol"),
            pl.col("session").shift(1).over("symbol").alias("before"),
        )
        .filter(pl.col("before").is_not_null())
    )
    cont = nxt.filter(
        pl.Series(
            [
                CALENDAR.index(a) - CALENDAR.index(b) == 1
                for a, b in nxt[["session", "before"]].iter_rows()
            ]
        )
    )
    assert cont.height > 0
    assert np.allclose(cont["prev_position"].to_numpy(), cont["left"].to_numpy())
    r = env.run([LATEST], ["offline_rl_policy", "offline_rl_champion"], **copy)
    assert r.success
    row = lake.scan("offline_rl_policy", [LATEST]).collect().row(0, named=True)
    assert np.isfinite(row["ope_dr_lo"]) and row["verdict"]
    assert 0.25 <= row["mean_bucket"] <= 1.0
    # served: each name moves from what the traded book held the session before (the
    # previous sized_weights partition) by one of the rates
    from trademl_assets.offline_rl import RLSizer
    from trademl_assets.policy import held_before, history_upto, sizing_inputs

    latest = dt.date.fromisoformat(LATEST)
    held = held_before(lake, latest, s)
    assert held, "sized_weights of the session before is written"
    with tempfile.TemporaryDirectory() as tmp:
        path = env.resources["mlflow"].download(
            f"models:/offline_rl/{row['version']}", Path(tmp) / "m"
        )
        lazy = {k: lake.scan(k, KEYS[-60:]) for k in ("target_weights", "features", "bars")}
        window = sizing_inputs(*lazy.values(), s, lake, [LATEST])
        day = window[0].filter(pl.col("date") == latest)
        sizes = RLSizer(path).sizes_for(day, history_upto(window, latest), s, held)
    w = day["weight"].to_numpy()
    h = np.array([held.get(sym, 0.0) for sym in day["symbol"]])
    moving = np.abs(w - h) > 1e-9
    assert moving.any()
    rates = (sizes * w - h)[moving] / (w - h)[moving]
    assert np.all(np.min(np.abs(rates[:, None] - np.asarray(cfg.buckets)), axis=1) < 1e-6)
