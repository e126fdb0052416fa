"""Equities sleeve as assets: train → gate → promote → score, with a real MLflow store."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from tests.trademl_assets.conftest import RANGE_END, RANGE_START
from trademl_assets.data import bars
from trademl_assets.equities import equities_xs_champion, equities_xs_model, equities_xs_scores
from trademl_assets.features import features
from trademl_assets.labels import labels
from trademl_assets.partitions import SESSIONS

KEYS = SESSIONS.get_partition_keys()[:300]
ASSETS = [bars, features, labels, equities_xs_model, equities_xs_champion, equities_xs_scores]
TRAIN = """
equities:
  n_trials: 2
  n_estimators: 40
  n_groups: 4
  n_test_groups: 1
  embargo: 5
  half_life_months: null
  promotion: {promotion}
"""
LENIENT = (
    "{min_path_sharpe: -100, max_drawdown: 1.0, min_dsr: 0.0, max_pbo: 1.0, "
    "ic_margin_vs_baseline: -1.0}"
)
STRICT = "{min_path_sharpe: 50.0}"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("equities")
    store = LakeResource(root=str(home / "lake"))
    base = {
        "lake": LakeIOManager(store=store),
        "lake_store": store,
        "market_data": MarketDataResource(n_symbols=30, seed=4, target_ic=0.15),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}"),
    }
    result = _run(base, home, KEYS, ["bars", "features", "labels"], LENIENT)
    assert result.success
    return base, home


def _run(base, home, keys, selection, promotion, raise_on_error=True):
    cfg = home / f"cfg_{abs(hash(promotion))}.yaml"
    cfg.write_text(TRAIN.format(promotion=promotion))
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
        resources={**base, "settings": SettingsResource(config_path=str(cfg))},
        raise_on_error=raise_on_error,
    )


def test_train_promote_score_then_a_failing_gate_moves_nothing(env):
    base, home = env
    as_of = KEYS[-1]
    mlflow: MlflowResource = base["mlflow"]
    first = _run(base, home, [as_of], ["equities_xs_model", "equities_xs_champion"], LENIENT)
    assert first.success
    (gate,) = first.get_asset_check_evaluations()
    assert gate.passed and gate.check_name == "promotion_gate"
    assert str(mlflow.alias_version("equities_xs", "champion").version) == "1"
    run = mlflow.client().get_run(mlflow.alias_version("equities_xs", "champion").run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster.partition"] == as_of
    assert run.data.metrics["oos_rank_ic"] > 0.03  # planted rank IC ≈ 0.15
    bundle = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "bundle")}
    for name in ("model.onnx", "model.native", "features.json", "feature_list.json", "oof.parquet"):
        assert f"bundle/{name}" in bundle, bundle

    scored = _run(base, home, [as_of], ["equities_xs_scores"], LENIENT)
    assert scored.success
    lake = Lake(home / "lake")
    scores = lake.scan("equities_xs_scores", [as_of]).collect()
    bars_today = lake.scan("bars", [as_of]).collect()
    assert scores.height == bars_today.height
    assert scores.get_column("model_version").unique().to_list() == ["1"]
    assert scores.get_column("score").is_finite().all()
    # a session before any promotion has no champion as of its date: no scores, no look-ahead
    early = _run(base, home, [KEYS[-5]], ["equities_xs_scores"], LENIENT)
    assert early.success
    assert lake.scan("equities_xs_scores", [KEYS[-5]]).collect().height == 0

    second = _run(
        base, home, [as_of], ["equities_xs_model", "equities_xs_champion"], STRICT,
        raise_on_error=False,
    )  # fmt: skip
    (gate,) = second.get_asset_check_evaluations()
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert "path_sharpe_median" in gate.description
    materialized = {e.asset_key.to_user_string() for e in second.get_asset_materialization_events()}
    assert materialized == {"equities_xs_model"}  # the promotion step never ran
    assert str(mlflow.alias_version("equities_xs", "champion").version) == "1"
    assert str(mlflow.alias_version("equities_xs", "challenger").version) == "2"
    refused = mlflow.client().get_model_version("equities_xs", "2").tags
    assert any(k.startswith("promotion.refused") for k in refused)
    row = lake.scan("equities_xs_model", [as_of]).collect()
    assert row.get_column("version").to_list() == ["2"]
    assert not row.get_column("passed_gate").item()
    assert isinstance(row, pl.DataFrame)


def test_triple_barrier_classifier_snapshot_logs_calibration(env):
    base, home = env
    cfg = TRAIN.replace("equities:\n", "equities:\n  objective: classification\n")
    mlflow: MlflowResource = base["mlflow"]
    before = {v.version for v in mlflow.client().search_model_versions("name='equities_xs'")}
    path = home / "cls.yaml"
    path.write_text(cfg.format(promotion=STRICT))
    result = dg.materialize(
        ASSETS,
        selection=["equities_xs_model", "equities_xs_champion"],
        partition_key=KEYS[-1],
        instance=dg.DagsterInstance.ephemeral(),
        resources={**base, "settings": SettingsResource(config_path=str(path))},
        raise_on_error=False,
    )
    (gate,) = result.get_asset_check_evaluations()
    assert not gate.passed  # strict bars: refused, and nothing promoted
    new = {v.version for v in mlflow.client().search_model_versions("name='equities_xs'")} - before
    (version,) = new
    run = mlflow.client().get_run(mlflow.client().get_model_version("equities_xs", version).run_id)
    assert 0.0 < run.data.metrics["brier"] < 0.3
    plots = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "plots")}
    assert "plots/reliability.png" in plots


def test_a_backfilled_session_faces_its_own_champion_and_leaves_the_alias(env):
    """Training as of an earlier session compares with the champion *as of that session*
    (none here), not with today's, which saw later data; and `champion` never moves back."""
    base, home = env
    mlflow: MlflowResource = base["mlflow"]
    champion = mlflow.alias_version("equities_xs", "champion")
    assert champion is not None and str(champion.version) == "1"  # promoted as of KEYS[-1]
    # a margin no model can beat: only a gate that (wrongly) faces v1 would refuse
    unbeatable = LENIENT.replace("}", ", ic_margin_vs_champion: 1.0}")
    early = KEYS[-25]  # the 12-1 baseline needs 253 sessions of bars: KEYS holds 300
    run = _run(base, home, [early], ["equities_xs_model", "equities_xs_champion"], unbeatable)
    assert run.success
    (gate,) = run.get_asset_check_evaluations()
    assert gate.passed, gate.description
    lake = Lake(home / "lake")
    row = lake.scan("equities_xs_model", [early]).collect().row(0, named=True)
    assert row["passed_gate"]
    assert str(mlflow.alias_version("equities_xs", "champion").version) == "1"  # not moved back
    tags = mlflow.client().get_model_version("equities_xs", row["version"]).tags
    assert any(k.startswith("promotion.") and "refused" not in k for k in tags), tags
    history = lake.scan("equities_xs_champion", [early, KEYS[-1]]).collect().sort("date")
    assert history.get_column("version").to_list() == [row["version"], "1"]
    # a session between the two promotions is scored by the backfilled snapshot
    mid = KEYS[-12]
    assert _run(base, home, [mid], ["equities_xs_scores"], LENIENT).success
    scored = lake.scan("equities_xs_scores", [mid]).collect()
    assert scored.get_column("model_version").unique().to_list() == [row["version"]]
