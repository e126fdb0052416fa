"""A CPCV sleeve through the sleeve interface, with a real MLflow store: train → gate →
champion → scores as of each session; OOF with its layout; a refusal is a verdict."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from tests.trademl_assets.conftest import RANGE_END, RANGE_START
from trademl.validation.layout import SplitLayout
from trademl_assets.champion import champion_asset
from trademl_assets.data import bars
from trademl_assets.equities import equities_spec
from trademl_assets.features import features
from trademl_assets.labels import labels
from trademl_assets.partitions import SESSIONS
from trademl_assets.sleeves import model_assets, scores_asset

KEYS = SESSIONS.get_partition_keys()[:300]
SPEC = equities_spec("lgbm")
ASSETS = [bars, features, labels, model_assets(SPEC), champion_asset(SPEC), scores_asset(SPEC)]
TRAIN = """
equities:
  models: [lgbm]
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
MODEL = ["equities_lgbm_model", "equities_lgbm_oof", "equities_lgbm_champion"]


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


def _run(base, home, keys, selection, promotion, cfg_text=TRAIN):
    cfg = home / f"cfg_{abs(hash((promotion, cfg_text)))}.yaml"
    cfg.write_text(cfg_text.format(promotion=promotion))
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
        resources={**base, "settings": SettingsResource(config_path=str(cfg))},
        raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_train_promote_score_then_a_refusal_is_a_verdict_and_moves_nothing(env):
    base, home = env
    as_of = KEYS[-1]
    mlflow: MlflowResource = base["mlflow"]
    first = _run(base, home, [as_of], MODEL, LENIENT)
    assert first.success
    (gate,) = first.get_asset_check_evaluations()
    assert gate.passed and gate.check_name == "promotion_gate"
    assert str(mlflow.alias_version("equities_lgbm", "champion").version) == "1"
    run = mlflow.client().get_run(mlflow.alias_version("equities_lgbm", "champion").run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster.partition"] == as_of
    assert run.data.metrics["oos_rank_ic"] > 0.03  # planted rank IC ≈ 0.15
    arts = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "oof")}
    assert {"oof/oof.parquet", "oof/layout.json"} <= arts
    # the evaluation suite on the OOF rows against the realized forward return
    m = run.data.metrics
    assert m["eval_coverage"] == pytest.approx(1.0) and m["eval_rank_ic"] > 0.03
    assert 0.0 <= m["eval_ndcg_at_k"] <= 1.0 and 0.0 <= m["eval_precision_at_k"] <= 1.0
    assert {"eval_mae", "eval_rmse", "eval_r2", "eval_smape", "eval_ic"} <= set(m)
    evaluation = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "evaluation")}
    assert {
        "evaluation/residuals.png",
        "evaluation/ic_by_period.png",
        "evaluation/per_session.parquet",
    } <= evaluation
    (mat,) = [
        m
        for m in first.asset_materializations_for_node("equities_lgbm_train")
        if m.asset_key == dg.AssetKey("equities_lgbm_model")
    ]
    assert "ic_by_period" in mat.metadata and "eval_rank_ic" in mat.metadata
    # the registered model is the scoring bundle: ONNX with its own features.json
    version = mlflow.client().get_model_version("equities_lgbm", "1")
    local = mlflow.download(f"models:/equities_lgbm/{version.version}", home / "dl")
    assert {"model.onnx", "features.json", "feature_list.json"} <= {p.name for p in local.iterdir()}

    # the OOF table: one row per training sample, every CPCV path, and the layout
    lake = Lake(home / "lake")
    oof = lake.scan("equities_lgbm_oof", [as_of]).collect()
    layout = SplitLayout.from_dict(json.loads(oof.get_column("layout")[0]))
    assert layout.kind == "cpcv" and len(layout.groups) == 4 and layout.n_paths == 1
    assert {"date", "symbol", "t1", "y", "oof_path_0", "version", "passed_gate"} <= set(oof.columns)
    assert oof.get_column("t1").max() <= dt.date.fromisoformat(as_of)  # labels known by then
    assert oof.get_column("passed_gate").all()

    scored = _run(base, home, [as_of], ["equities_lgbm_scores"], LENIENT)
    assert scored.success
    scores = lake.scan("equities_lgbm_scores", [as_of]).collect()
    bars_today = lake.scan("bars", [as_of]).collect()
    assert scores.height == bars_today.height
    assert scores.get_column("model_version").unique().to_list() == ["1"]
    assert scores.get_column("role").unique().to_list() == ["champion"]
    assert scores.get_column("score").is_finite().all()
    # a session before any promotion has no champion as of its date: no scores, no look-ahead
    early = _run(base, home, [KEYS[-5]], ["equities_lgbm_scores"], LENIENT)
    assert early.success
    assert lake.scan("equities_lgbm_scores", [KEYS[-5]]).collect().height == 0

    second = _run(base, home, [as_of], MODEL, STRICT)
    assert second.success  # a refusal is a verdict, not a crash
    (gate,) = second.get_asset_check_evaluations()
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert "path_sharpe_median" in gate.description
    assert "vs bar ≥ 50" in gate.metadata["path_sharpe_median"].value  # value and the bar
    assert "max_drawdown" not in gate.metadata  # only the failed bars
    assert _materialized(second) == {"equities_lgbm_model", "equities_lgbm_oof"}
    assert str(mlflow.alias_version("equities_lgbm", "champion").version) == "1"
    assert str(mlflow.alias_version("equities_lgbm", "challenger").version) == "2"
    # challenger − champion rank IC on the rows both scored out of fold, with its interval
    m2 = mlflow.client().get_run(mlflow.alias_version("equities_lgbm", "challenger").run_id)
    m2 = m2.data.metrics
    assert m2["eval_rank_ic_vs_champion_rows"] > 0
    assert m2["eval_rank_ic_vs_champion_lo"] <= m2["eval_rank_ic_vs_champion"]
    assert m2["eval_rank_ic_vs_champion"] <= m2["eval_rank_ic_vs_champion_hi"]
    refused = mlflow.client().get_model_version("equities_lgbm", "2").tags
    assert any(k.startswith("promotion.refused") for k in refused)
    row = lake.scan("equities_lgbm_model", [as_of]).collect().row(0, named=True)
    assert row["version"] == "2" and not row["passed_gate"]
    assert "path_sharpe_median" in row["verdict"]
    # the refused challenger trades in the shadow: scored beside the champion
    again = _run(base, home, [as_of], ["equities_lgbm_scores"], LENIENT)
    assert again.success
    both = lake.scan("equities_lgbm_scores", [as_of]).collect()
    roles = dict(both.select("role", "model_version").unique().iter_rows())
    assert roles == {"champion": "1", "challenger": "2"}


def test_triple_barrier_classifier_snapshot_logs_calibration(env):
    base, home = env
    cfg = TRAIN.replace("equities:\n", "equities:\n  objective: classification\n")
    mlflow: MlflowResource = base["mlflow"]
    before = {v.version for v in mlflow.client().search_model_versions("name='equities_lgbm'")}
    result = _run(base, home, [KEYS[-1]], MODEL, STRICT, cfg_text=cfg)
    (gate,) = result.get_asset_check_evaluations()
    assert result.success and not gate.passed  # strict bars: refused, and nothing promoted
    new = {v.version for v in mlflow.client().search_model_versions("name='equities_lgbm'")}
    (version,) = new - before
    run = mlflow.client().get_run(
        mlflow.client().get_model_version("equities_lgbm", version).run_id
    )
    assert 0.0 < run.data.metrics["brier"] < 0.3
    plots = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "plots")}
    assert "plots/reliability.png" in plots


def test_a_backfilled_session_faces_its_own_champion_and_leaves_the_alias(env):
    """Training as of an earlier session compares with the champion *as of that session*
    (none here), not with today's, which saw later data; and `champion` never moves back."""
    base, home = env
    mlflow: MlflowResource = base["mlflow"]
    champion = mlflow.alias_version("equities_lgbm", "champion")
    assert champion is not None and str(champion.version) == "1"  # promoted as of KEYS[-1]
    # a margin no model can beat: only a gate that (wrongly) faces v1 would refuse
    unbeatable = LENIENT.replace("}", ", ic_margin_vs_champion: 1.0}")
    early = KEYS[-25]
    run = _run(base, home, [early], MODEL, unbeatable)
    assert run.success
    (gate,) = run.get_asset_check_evaluations()
    assert gate.passed, gate.description
    lake = Lake(home / "lake")
    row = lake.scan("equities_lgbm_model", [early]).collect().row(0, named=True)
    assert row["passed_gate"]
    assert str(mlflow.alias_version("equities_lgbm", "champion").version) == "1"  # not back
    tags = mlflow.client().get_model_version("equities_lgbm", row["version"]).tags
    assert any(k.startswith("promotion.") and "refused" not in k for k in tags), tags
    history = lake.scan("equities_lgbm_champion", [early, KEYS[-1]]).collect().sort("date")
    assert history.get_column("version").to_list() == [row["version"], "1"]
    # a session between the two promotions is scored by the backfilled snapshot
    mid = KEYS[-12]
    assert _run(base, home, [mid], ["equities_lgbm_scores"], LENIENT).success
    scored = lake.scan("equities_lgbm_scores", [mid]).collect()
    champ = scored.filter(pl.col("role") == "champion")
    assert champ.get_column("model_version").unique().to_list() == [row["version"]]


def test_a_required_shadow_record_holds_a_passing_challenger_until_it_has_traded(env):
    """min_shadow_sessions: a challenger clearing every bar is held, trades in the shadow,
    and is promoted by the next training run once its record is long enough."""
    base, home = env
    lake = Lake(home / "lake")
    mlflow: MlflowResource = base["mlflow"]
    # (any champion of the earlier tests is beatable: this test is about the shadow record)
    probation = LENIENT.replace("}", ", ic_margin_vs_champion: -1.0, min_shadow_sessions: 3}")

    def champion() -> str | None:
        v = mlflow.alias_version("equities_lgbm", "champion")
        return None if v is None else str(v.version)

    champion_before = champion()

    def shadow(version: str, sessions: list[str]) -> None:
        for k in sessions:
            day = pl.DataFrame(
                {
                    "date": [dt.date.fromisoformat(k)],
                    "book": [f"equities_lgbm@{version}"],
                    "symbol": ["S0001"],
                    "weight": [0.01],
                }
            )
            lake.write_partitions("shadow_weights", day, [k], "date")

    first, second, third = KEYS[-9], KEYS[-6], KEYS[-2]
    assert _run(base, home, [first], MODEL, probation).success
    held = lake.scan("equities_lgbm_model", [first]).collect().row(0, named=True)
    assert held["held"] and not held["passed_gate"] and "held until" in held["verdict"]
    assert champion() == champion_before
    shadow(held["version"], KEYS[-9:-7])  # two sessions: not enough at the next training
    assert _run(base, home, [second], MODEL, probation).success
    rows = lake.scan("equities_lgbm_model", [second]).collect()
    assert rows.get_column("event").to_list() == ["trained"]  # no promotion, a new held one
    newer = rows.row(0, named=True)
    assert newer["held"] and newer["version"] != held["version"]
    shadow(newer["version"], KEYS[-6:-3])  # three sessions: proven by the next training
    assert _run(base, home, [third], MODEL, probation).success
    rows = lake.scan("equities_lgbm_model", [third]).collect()
    assert rows.get_column("event").to_list() == ["shadow_record", "trained"]
    proven = rows.row(0, named=True)
    assert proven["version"] == newer["version"] and proven["passed_gate"]
    assert "traded 3 of 3 shadow sessions" in proven["verdict"]
    # promoted as of `third` (the alias stays on a later promotion of the earlier tests)
    tags = mlflow.client().get_model_version("equities_lgbm", newer["version"]).tags
    assert tags.get("promotion.verdict", "").endswith("promoted")
    history = lake.scan("equities_lgbm_champion", [third]).collect()
    assert history.get_column("version").to_list() == [newer["version"]]


def test_retraining_identical_inputs_returns_the_registered_version(env):
    """Re-materializing a training partition with the same inputs, settings and code returns
    the registered version (`cached`, no new MLflow run or version); a changed setting or
    changed input data trains a new one."""
    base, home = env
    mlflow = base["mlflow"]
    lake = Lake(home / "lake")
    as_of = KEYS[-3]

    def versions() -> int:
        return len(mlflow.client().search_model_versions("name='equities_lgbm'"))

    first = _run(base, home, [as_of], MODEL, LENIENT)
    assert first.success
    row = lake.scan("equities_lgbm_model", [as_of]).collect().row(0, named=True)
    n, runs = versions(), len(mlflow.client().search_runs([mlflow._experiment_id(mlflow.client())]))
    oof = lake.scan("equities_lgbm_oof", [as_of]).collect()

    again = _run(base, home, [as_of], MODEL, LENIENT)
    assert again.success
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in again.get_asset_materialization_events()
    }
    assert meta["equities_lgbm_model"]["cached"].value is True
    assert versions() == n  # no new version
    assert len(mlflow.client().search_runs([mlflow._experiment_id(mlflow.client())])) == runs
    assert lake.scan("equities_lgbm_model", [as_of]).collect().row(0, named=True) == row
    assert lake.scan("equities_lgbm_oof", [as_of]).collect().equals(oof)

    changed = TRAIN.replace("n_estimators: 40", "n_estimators: 41")
    other = _run(base, home, [as_of], MODEL, LENIENT, cfg_text=changed)
    assert other.success and versions() == n + 1  # a changed setting trains a new version
    assert not {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in other.get_asset_materialization_events()
    }["equities_lgbm_model"]["cached"].value
    # changed input data (one label restated inside the training window) trains a new one
    day = KEYS[-20]
    labels_day = lake.scan("labels", [day]).collect()
    restated = labels_day.with_columns(pl.col("value") * 1.01)
    lake.write_partitions("labels", restated, [day], "t1")
    moved = _run(base, home, [as_of], MODEL, LENIENT, cfg_text=changed)
    assert moved.success and versions() == n + 2
