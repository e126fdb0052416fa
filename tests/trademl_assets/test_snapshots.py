"""`lstm_snapshot` through Dagster: a year's snapshot trains on that window only, registers
`lstm` with its version key and result tags, and re-materializing it with the same settings,
window, universe and code returns the same version (cached) without training."""

from __future__ import annotations

import dagster as dg
import pytest

from resources.lake import LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from tests.trademl_assets.conftest import run_assets
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG
from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_sessions
from trademl_assets.snapshots import lstm_snapshot, patchtst_snapshot
from trademl_jobs.definitions import defs

YEAR = SNAPSHOT_YEARS.get_last_partition_key()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("snap")
    keys = [d.isoformat() for d in snapshot_sessions(YEAR, 1)]
    market = MarketDataResource(n_symbols=12, seed=3, start=keys[0], missing_bar_rate=0.0)
    assert run_assets(home, keys, market=market, selection=["bars"]).success
    cfg = home / "snap.yaml"
    cfg.write_text(
        "extends: local\n"
        "lstm: {train_years: 1, seq_len: 20, hidden: 8, max_epochs: 3, patience: 2,"
        " batch_size: 64}\n"
        "patchtst: {train_years: 1, seq_len: 16, patch_len: 8, d_model: 8, n_layers: 1,"
        " n_heads: 2, max_epochs: 2, batch_size: 64}\n"
    )
    return home


def _materialize(home, asset=lstm_snapshot) -> dg.ExecuteInProcessResult:
    store = LakeResource(root=str(home / "lake"))
    return dg.materialize(
        [asset],
        partition_key=YEAR,
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            **defs.resources,
            "lake": LakeIOManager(store=store),
            "lake_store": store,
            "settings": SettingsResource(config_path=str(home / "snap.yaml")),
            "mlflow": MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}"),
        },
    )


def _meta(result: dg.ExecuteInProcessResult, node: str = "lstm_snapshot") -> dict:
    (mat,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mat.metadata.items()}


def test_a_snapshot_registers_once_and_a_rerun_is_cached(home):
    first = _meta(_materialize(home))
    assert first["cached"] is False
    window = snapshot_sessions(YEAR, 1)
    assert first["window"] == f"{window[0]}…{window[-1]}"
    assert first["n_train"] > 0 and first["n_val"] > 0
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    versions = mlflow.client().search_model_versions("name='lstm'")
    assert [str(v.version) for v in versions] == [first["version"]]
    tags = versions[0].tags
    assert tags[VERSION_KEY_TAG] == first["version_key"]
    assert (tags["trademl.snapshot"], tags["trademl.window_end"]) == (YEAR, str(window[-1]))
    assert tags["trademl.promoted"] == str(first["promoted"])
    run = mlflow.client().get_run(versions[0].run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dagster.partition"] == YEAR
    # the evaluation suite on the validation weeks
    assert run.data.metrics["eval_coverage"] == 1.0 and "eval_rank_ic" in run.data.metrics
    plots = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/residuals.png", "evaluation/ic_by_period.png"} <= plots
    again = _meta(_materialize(home))
    assert again["cached"] is True and str(again["version"]) == first["version"]
    assert len(mlflow.client().search_model_versions("name='lstm'")) == 1


def test_patchtst_snapshot_reads_the_ohlcv_channels_and_registers_its_own_model(home):
    meta = _meta(_materialize(home, patchtst_snapshot), "patchtst_snapshot")
    assert meta["cached"] is False and meta["channels"] == "ret, gap, range, volume"
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    (version,) = mlflow.client().search_model_versions("name='patchtst'")
    assert version.tags[VERSION_KEY_TAG] == meta["version_key"]


def test_a_new_version_is_judged_against_the_champion_on_its_own_weeks(home):
    """With a champion in place, other settings train a new version whose gate reads the
    champion's MSE on the new validation weeks (the champion's files, downloaded)."""
    first = _meta(_materialize(home))  # cached or not: version 1 exists
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    mlflow.promote("lstm", first["version"], {"by": "test"})
    cfg = home / "snap.yaml"
    original = cfg.read_text()
    try:
        cfg.write_text(original.replace("hidden: 8", "hidden: 6"))
        second = _meta(_materialize(home))
    finally:
        cfg.write_text(original)
    assert second["cached"] is False and second["version"] != first["version"]
    assert second["champion_val_mse"] > 0
    v = mlflow.client().get_model_version("lstm", str(second["version"]))
    assert v.tags["trademl.prior_version"] == str(first["version"])
