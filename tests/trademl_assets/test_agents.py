"""The allocation agents through Dagster: `ppo_lstm_agent` as of a year end reads the `lstm`
snapshot of the year before (refused, naming it, until that snapshot is registered), trains on
the top-N most liquid names, registers `ppo_lstm` (archive + ONNX graph + names) with its
window, mode, snapshots and `symbols_used`, answers a re-run from the registry (cached), and a
finetune starts from the champion (refused, 400, without one)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from resources.lake import LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from tests.trademl_assets.conftest import run_assets
from trademl.config import load_settings
from trademl.models.agents.export import ONNX_FILE, OnnxAgent, load_agent, trained_weights
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG
from trademl_assets.agents import AGENT_ASSETS, SYMBOLS_TAG, PlanError, plan_agent
from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_sessions
from trademl_assets.snapshots import lstm_snapshot
from trademl_jobs.definitions import defs

ppo_lstm_agent = AGENT_ASSETS["ppo_lstm"]
YEAR = SNAPSHOT_YEARS.get_last_partition_key()
BEFORE = str(int(YEAR) - 1)
CONFIG = (
    "extends: local\n"
    "lstm: {train_years: 1, seq_len: 20, hidden: 8, max_epochs: 2, patience: 2,"
    " batch_size: 64}\n"
    "agents: {train_years: 1, top_n: 5, held_out_weeks: 10, full_steps: 600,"
    " finetune_steps: 200, finetune_weeks: 8, episode_weeks: 10, net_arch: [16],"
    " promotion: {min_sharpe: -10.0, margin: -1.0}}\n"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("agents")
    keys = [d.isoformat() for d in snapshot_sessions(YEAR, 2)]
    market = MarketDataResource(n_symbols=12, seed=4, start=keys[0], missing_bar_rate=0.0)
    assert run_assets(home, keys, market=market, selection=["bars"]).success
    (home / "agents.yaml").write_text(CONFIG)
    return home


def _mlflow(home: Path) -> MlflowResource:
    return MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


def _materialize(
    home: Path, asset, key: str, mode: str | None = None, mlflow: MlflowResource | None = None
):
    store = LakeResource(root=str(home / "lake"))
    config = None
    if mode is not None:
        config = {"ops": {"ppo_lstm_agent": {"config": {"mode": mode}}}}
    return dg.materialize(
        [asset],
        partition_key=key,
        run_config=config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources={
            **defs.resources,
            "lake": LakeIOManager(store=store),
            "lake_store": store,
            "settings": SettingsResource(config_path=str(home / "agents.yaml")),
            "mlflow": mlflow or _mlflow(home),
        },
    )


def _meta(result: dg.ExecuteInProcessResult) -> dict:
    (mat,) = result.asset_materializations_for_node("ppo_lstm_agent")
    return {k: v.value for k, v in mat.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return str(event.step_failure_data.error.message)


def test_an_agent_waits_for_the_snapshot_of_the_year_before(home, tmp_path):
    s = load_settings(str(home / "agents.yaml"))
    empty = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(PlanError, match=f"lstm snapshots of {BEFORE}") as err:
        plan_agent(s, empty, "ppo_lstm", "full", YEAR)
    assert err.value.status == 409 and "POST /train/lstm" in str(err.value)
    result = _materialize(home, ppo_lstm_agent, YEAR, mlflow=empty)
    assert not result.success and f"materialize lstm_snapshot for {BEFORE}" in _failure(result)
    with pytest.raises(PlanError, match="no agent") as err:
        plan_agent(s, empty, "a2c_lstm", "full", YEAR)
    assert err.value.status == 404


@pytest.fixture(scope="module")
def full(home: Path) -> dict:
    """The lstm snapshot of the year before, then the full agent (a finetune is refused in
    between: there is no champion yet)."""
    assert _materialize(home, lstm_snapshot, BEFORE).success
    s = load_settings(str(home / "agents.yaml"))
    with pytest.raises(PlanError, match="champion of ppo_lstm") as err:
        plan_agent(s, _mlflow(home), "ppo_lstm", "finetune", YEAR)
    assert err.value.status == 400
    return _meta(_materialize(home, ppo_lstm_agent, YEAR))


def test_an_agent_trains_on_the_liquid_names_registers_onnx_and_is_cached(home, full, tmp_path):
    first = full
    assert first["cached"] is False and first["mode"] == "full"
    window = snapshot_sessions(YEAR, 1)
    assert first["window"] == f"{window[0]}…{window[-1]}"
    # the 5 names of highest mean close × volume over the 20 bars up to the window start
    bars = pl.read_delta(str(home / "lake" / "bars")).filter(pl.col("date") <= window[0])
    top = (
        bars.sort("date")
        .group_by("symbol")
        .agg((pl.col("close") * pl.col("volume")).tail(20).mean().alias("dv"))
        .sort("dv", descending=True)
        .head(5)
    )
    expected = sorted(top.get_column("symbol").to_list())
    assert first["symbols_used"] == ", ".join(expected)
    assert first["n_held_out_weeks"] == 10 and first["held_out_sharpe"] == first["held_out_sharpe"]

    mlflow = _mlflow(home)
    (version,) = mlflow.client().search_model_versions("name='ppo_lstm'")
    tags = version.tags
    assert tags[VERSION_KEY_TAG] == first["version_key"]
    assert tags[SYMBOLS_TAG] == ",".join(expected)
    (lstm,) = mlflow.client().search_model_versions("name='lstm'")
    assert tags["trademl.forecaster_versions"] == f"{BEFORE}:{lstm.version}"
    assert tags["trademl.promoted"] == str(first["promoted"])
    run = mlflow.client().get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dagster.partition"] == YEAR

    # the served ONNX graph gives the trained policy's weights
    files = Path(mlflow.download(f"models:/ppo_lstm/{version.version}", tmp_path))
    model, meta = load_agent(files)
    assert meta["symbols"] == expected
    onnx = OnnxAgent((files / ONNX_FILE).read_bytes())
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((8, 4 * 5 + 1)).astype(np.float32)
    want = np.stack([trained_weights(model, o, meta["temperature"]) for o in obs])
    np.testing.assert_allclose(onnx.weights(obs), want, atol=1e-5)

    again = _meta(_materialize(home, ppo_lstm_agent, YEAR))
    assert again["cached"] is True and str(again["version"]) == str(first["version"])
    assert len(mlflow.client().search_model_versions("name='ppo_lstm'")) == 1


def test_a_finetune_starts_from_the_champion_and_records_it(home, full):
    mlflow = _mlflow(home)
    first = mlflow.client().search_model_versions(
        f"name='ppo_lstm' and tags.`{VERSION_KEY_TAG}`='{full['version_key']}'"
    )
    mlflow.promote("ppo_lstm", first[0].version, {"by": "test"})
    meta = _meta(_materialize(home, ppo_lstm_agent, YEAR, mode="finetune"))
    assert meta["cached"] is False and meta["mode"] == "finetune"
    assert meta["n_train_weeks"] == 8  # the last finetune_weeks training weeks
    v = mlflow.client().get_model_version("ppo_lstm", str(meta["version"]))
    assert v.tags["trademl.prior_version"] == str(first[0].version)
    assert v.tags["trademl.mode"] == "finetune" and "champion_sharpe" in meta
    assert meta["version_key"] != first[0].tags[VERSION_KEY_TAG]


def test_live_agents_trade_in_the_shadow_from_the_year_after_their_snapshot(home, full):
    """Once the forecaster snapshot of the agent's year exists, each live agent version holds,
    at every session after its year end, the targets of the latest week end ≤ it — the same
    whether computed through that session or through a later one (point in time)."""
    from trademl.lake import Lake
    from trademl_assets.agent_shadow import agent_books
    from trademl_assets.partitions import CALENDAR

    after = CALENDAR.sessions_in_range(
        snapshot_sessions(YEAR, 1)[-1] + dt.timedelta(days=1),
        snapshot_sessions(YEAR, 1)[-1] + dt.timedelta(days=45),
    )
    market = MarketDataResource(
        n_symbols=12, seed=4, start=snapshot_sessions(YEAR, 2)[0].isoformat(), missing_bar_rate=0.0
    )
    assert run_assets(
        home, [d.isoformat() for d in after], market=market, selection=["bars"]
    ).success
    s = load_settings(str(home / "agents.yaml"))
    mlflow, lake = _mlflow(home), Lake(str(home / "lake"))
    risk = pl.DataFrame(
        schema={"date": pl.Date, "symbol": pl.String, "sigma": pl.Float64, "adv": pl.Float64}
    )
    notes: list[str] = []
    assert agent_books(s, mlflow, lake, after, risk, notes.append) == []  # no 2025 lstm yet
    assert any(f"no lstm snapshot of {YEAR}" in n for n in notes)

    assert _materialize(home, lstm_snapshot, YEAR).success
    books = agent_books(s, mlflow, lake, after, risk, notes.append)
    assert books and {b[1] for b in books} == {"ppo_lstm"}
    live = {str(mlflow.alias_version("ppo_lstm", a).version) for a in ("champion", "challenger")}
    assert {b[2] for b in books} == live
    first_friday = next(d for d in after if d.weekday() == 4)
    for kind, _, _, w in books:
        assert kind == "agent"
        assert w.get_column("date").min() == first_friday  # from cash until its first week end
        assert sorted(w.get_column("symbol").unique()) == sorted(full["symbols_used"].split(", "))
        per_day = w.group_by("date").agg(pl.col("weight").sum(), pl.len())
        assert (per_day.get_column("len") == 5).all()
        assert (
            (per_day.get_column("weight") > 0) & (per_day.get_column("weight") <= 1 + 1e-6)
        ).all()
        # Monday holds what the Friday before set
        fri = w.filter(pl.col("date") == first_friday).sort("symbol")
        nxt = CALENDAR.next_session(first_friday)
        mon = w.filter(pl.col("date") == nxt).sort("symbol")
        np.testing.assert_allclose(mon.get_column("weight"), fri.get_column("weight"))
    cut = [d for d in after if d <= first_friday + dt.timedelta(days=10)]
    shorter = {b[2]: b[3] for b in agent_books(s, mlflow, lake, cut, risk, notes.append)}
    for _, _, version, w in books:
        mine = w.filter(pl.col("date") <= cut[-1]).sort("date", "symbol")
        assert shorter[version].sort("date", "symbol").equals(mine)


def test_the_shadow_looks_for_agents_only_once_an_agent_asset_materialized():
    """`shadow_weights` opens the registry for agents only after an agent asset materialized
    on the instance (agents are registered by nothing else); other assets do not count."""
    from trademl_assets.agent_shadow import agents_materialized

    instance = dg.DagsterInstance.ephemeral()
    assert not agents_materialized(instance)
    instance.report_runless_asset_event(dg.AssetMaterialization("ppo_lstm"))
    instance.report_runless_asset_event(dg.AssetMaterialization("lstm_snapshot"))
    assert not agents_materialized(instance)
    instance.report_runless_asset_event(dg.AssetMaterialization("sac_patchtst_agent"))
    assert agents_materialized(instance)
