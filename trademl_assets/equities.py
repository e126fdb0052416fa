"""Equities sleeve: CPCV-trained alpha snapshots, promotion through blocking checks, scores."""

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from resources.lake import LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.features import feature_names
from trademl.models.equities.bundle import BundleScorer, save_bundle
from trademl.models.equities.pipeline import train_snapshot
from trademl.models.equities.plots import path_sharpe_hist, rank_ic_by_year, reliability_diagram
from trademl.models.equities.promotion import decide
from trademl.provenance import data_fingerprint
from trademl_assets.metadata import figure_metadata
from trademl_assets.partitions import CALENDAR, SESSIONS, SINGLE_RUN, TRAIN_LOOKBACK, sessions_of
from trademl_assets.sleeves import champion_as_of, champion_asset, champion_history

MODEL_NAME = "equities_xs"
GATE = "promotion_gate"
SCALARS = ("oos_rank_ic", "path_sharpe_median", "max_drawdown", "dsr", "pbo", "baseline_rank_ic")
REGIME_SCALARS = (
    "rank_ic_mean_high_vol",
    "rank_ic_mean_calm",
    "n_sessions_high_vol",
    "n_sessions_calm",
)


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="equities",
    io_manager_key="lake",
    ins={
        "features": dg.AssetIn(partition_mapping=TRAIN_LOOKBACK),
        "labels": dg.AssetIn(partition_mapping=TRAIN_LOOKBACK),
    },
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset="equities_xs_model",
            blocking=True,
            description="Promotion bars (path Sharpe, drawdown, DSR, PBO, rank IC vs baseline and "
            "champion); a failure stops promotion, and NaN fails closed.",
        )
    ],
    metadata={"partition_column": "date"},
    kinds={"lightgbm", "mlflow"},
)
def equities_xs_model(
    context: dg.AssetExecutionContext,
    features: pl.LazyFrame,
    labels: pl.LazyFrame,
    settings: SettingsResource,
    mlflow: MlflowResource,
    lake_store: LakeResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The cross-sectional alpha as of each session: trained on labels known by then.

    Logs the run to MLflow (metrics, params, ONNX + native model, features.json, OOF),
    registers a new `equities_xs` version with alias `challenger`, and judges it.
    """
    s = settings.get()
    cfg = s.equities
    names = feature_names(s.features.cross_sectional)
    rows = []
    decisions = []
    history = champion_history(lake_store.lake, "equities_xs_champion")
    passed_in_run: list[tuple[dt.date, dict]] = []
    for as_of in sessions_of(context.partition_keys):
        snap = train_snapshot(
            features,
            labels,
            as_of=as_of,
            sessions=CALENDAR.sessions,
            feature_names=names,
            cfg=cfg,
            horizon=s.labels.horizon,
            seed=s.data.seed,
            progress=lambda n, v: context.log.info(f"HPO trial {n}: CPCV rank IC {v:.4f}"),
        )
        # the champion as of d: promoted on or before d, or passed earlier in this run — never
        # the alias holder of today, which may have trained on sessions after d (a backfill)
        champ = champion_as_of(history, as_of)
        champ_metrics = mlflow.client().get_run(champ["run_id"]).data.metrics if champ else None
        if passed_in_run and (champ is None or passed_in_run[-1][0] >= champ["date"]):
            champ_metrics = passed_in_run[-1][1]
        decision = decide(snap.metrics, champ_metrics, cfg.promotion)
        if decision.promote:
            passed_in_run.append((as_of, snap.metrics))
        fingerprint = data_fingerprint(snap.oof.select("date", "symbol", "y"))
        with mlflow.start_run_for(
            context, data_fingerprint=fingerprint, run_name=f"{MODEL_NAME}@{as_of}"
        ) as run:
            run.log_params(
                {"kind": snap.kind, "as_of": as_of, "n_trials": snap.hpo.n_trials, **snap.params}
            )
            run.log_metrics({k: float(snap.metrics[k]) for k in SCALARS})
            run.log_metrics(
                {
                    "n_rows": snap.n_rows,
                    "n_trials": snap.hpo.n_trials,
                    "hpo_best_rank_ic": float(snap.metrics["hpo_best_rank_ic"]),
                }
            )
            run.log_metrics(
                {k: float(snap.metrics[k]) for k in REGIME_SCALARS if k in snap.metrics}
            )
            with tempfile.TemporaryDirectory() as tmp:
                bundle = save_bundle(
                    Path(tmp) / "model",
                    onnx_bytes=snap.onnx_bytes,
                    native_bytes=snap.native_bytes,
                    store=snap.store,
                    training_cfg=snap.training_cfg(cfg),
                    oof=snap.oof,
                )
                run.log_artifact(bundle, artifact_path="bundle")
            run.log_onnx_model(snap.onnx_bytes, name="model")
            fig_ic = rank_ic_by_year(snap.rank_ic_per_session)
            fig_sr = path_sharpe_hist(snap.metrics["sharpe_by_path"])
            run.log_figure(fig_ic, "plots/rank_ic_by_year.png")
            run.log_figure(fig_sr, "plots/path_sharpe.png")
            if "brier" in snap.metrics:  # classification on the triple-barrier label
                run.log_metrics({"brier": float(snap.metrics["brier"])})
                rel = snap.metrics["reliability"]
                run.log_figure(reliability_diagram(rel), "plots/reliability.png")
            run_id = run.run_id
        version = mlflow.register(run_id, "model", MODEL_NAME)
        if not decision.promote:
            mlflow.refuse(MODEL_NAME, version, decision.reasons())
        decisions.append((as_of, decision))
        rows.append(
            {
                "date": as_of,
                "model": MODEL_NAME,
                "version": version,
                "run_id": run_id,
                "passed_gate": decision.promote,
                **{k: float(snap.metrics[k]) for k in SCALARS},
                **{k: float(snap.metrics.get(k, float("nan"))) for k in REGIME_SCALARS},
                "n_trials": snap.hpo.n_trials,
            }
        )
    out = pl.DataFrame(rows).with_columns(pl.col("date").cast(pl.Date))
    last = decisions[-1][1]
    yield dg.Output(
        out,
        metadata={
            "version": rows[-1]["version"],
            **{k: dg.MetadataValue.float(rows[-1][k]) for k in SCALARS + REGIME_SCALARS},
            "rank_ic_by_year": figure_metadata(fig_ic),
            "path_sharpe": figure_metadata(fig_sr),
        },
    )
    failed = [(d, c) for d, dec in decisions for c in dec.checks if not c.passed]
    yield dg.AssetCheckResult(
        check_name=GATE,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(f"{d}: {c.reason}" for d, c in failed[:6]) or "every bar passed",
        metadata={name: reason for name, reason in last.reasons().items()},
    )


equities_xs_champion = champion_asset(
    model_asset="equities_xs_model", registered=MODEL_NAME, group="equities", reason_keys=SCALARS
)


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="equities",
    io_manager_key="lake",
    metadata={"partition_column": "date"},
    kinds={"onnx"},
)
def equities_xs_scores(
    context: dg.AssetExecutionContext,
    features: pl.DataFrame,
    lake_store: LakeResource,
    mlflow: MlflowResource,
) -> dg.Output[pl.DataFrame]:
    """Daily scores from the champion as of each session, via ONNX with its own features.json.

    A historical session uses the snapshot promoted as of the latest promotion ≤ that
    session, never one that saw later data; a session with no champion yet gets no rows.
    """
    history = champion_history(lake_store.lake, "equities_xs_champion")
    parts, used, cache = [], {}, {}
    for session in sessions_of(context.partition_keys):
        row = champion_as_of(history, session)
        if row is None:
            continue
        version = row["version"]
        if version not in cache:
            cache[version] = _load_bundle(mlflow, row["run_id"])
        day = features.filter(pl.col("date") == session)
        parts.append(cache[version].score(day).with_columns(pl.lit(version).alias("model_version")))
        used[str(session)] = version
    schema = {"date": pl.Date, "symbol": pl.String, "score": pl.Float64, "model_version": pl.String}
    out = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    missing = len(context.partition_keys) - len(used)
    if missing:
        context.log.warning(f"{missing} sessions have no champion as of their date: no scores")
    return dg.Output(
        out,
        metadata={
            "rows": out.height,
            "sessions_without_champion": missing,
            "model_versions": dg.MetadataValue.json(sorted(set(used.values()))),
        },
    )


def _load_bundle(mlflow: MlflowResource, run_id: str) -> BundleScorer:
    """Download a run's model bundle (ONNX + features.json) and open it for scoring."""
    tmp = tempfile.mkdtemp(prefix="trademl-bundle-")
    local = Path(mlflow.client().download_artifacts(run_id, "bundle", tmp))
    return BundleScorer.load(local / "model" if (local / "model").is_dir() else local)
