"""Forecasts sleeve: honest OOS signals ("rotten apples"), the live forecasters, their scores.

NeuralForecast (and torch) are imported inside the assets that train or predict, never at
module import: loading the code location stays fast.
"""

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.models.forecasts.apples import by_realization, forecast_quality
from trademl.models.forecasts.params import EnsembleParams, ForecastParams
from trademl.provenance import data_fingerprint
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import (
    FORECAST_HISTORY,
    FORECAST_INPUT_LOOKBACK,
    SESSIONS,
    SINGLE_RUN,
    sessions_of,
)
from trademl_assets.sleeves import (
    ModelCache,
    champion_as_of,
    champion_asset,
    champion_history,
    gate_result,
    register_judged,
)

MODEL_NAME = "oos_forecaster"
GATE = "forecaster_gate"
QUALITY = ("rank_ic_mean", "rank_ic_mean_patchtst", "rank_ic_mean_nhits", "hit_rate")
HISTORY = {"partition_mapping": FORECAST_HISTORY, "metadata": {MISSING_OK: True}}


def forecast_params(s: Settings) -> ForecastParams:
    """The models of the settings in force; CUDA on the gpu deployment."""
    f = s.forecasts
    return ForecastParams(
        lag=s.labels.execution_lag,
        input_size=f.input_size,
        max_steps=f.max_steps,
        learning_rate=f.learning_rate,
        batch_size=f.batch_size,
        windows_batch_size=f.windows_batch_size,
        hidden_size=f.hidden_size,
        patch_len=f.patch_len,
        stride=f.stride,
        linear_hidden_size=2 * f.hidden_size,
        nhits_mlp_units=f.nhits_mlp_units,
        seed=f.seed,
        accelerator="gpu" if s.env == "gpu" else "cpu",
        refit=f.refit or False,
        vol_window=f.vol_window,
        trend_window=f.trend_window,
        ensemble=EnsembleParams(**f.ensemble.model_dump()),
    )


def _inputs(
    bars: pl.LazyFrame, features: pl.LazyFrame, s: Settings
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Bars and the NHITS exogenous features over the sessions where both exist."""
    cols = list(s.forecasts.hist_exog)
    b = bars.select("date", "symbol", "open", "close").collect()
    if not cols:
        return b, None
    f = features.select("date", "symbol", *cols).collect()
    return b.filter(pl.col("date") >= f.get_column("date").min()), f


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="forecasts",
    io_manager_key="lake",
    pool="gpu",
    ins={"bars": dg.AssetIn(**HISTORY), "features": dg.AssetIn(**HISTORY)},
    metadata={"partition_column": "date"},
    kinds={"pytorch"},
)
def oos_signals(
    context: dg.AssetExecutionContext,
    bars: pl.LazyFrame,
    features: pl.LazyFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """Walk-forward OOS forecasts by PatchTST and NHITS, keyed by the session their realized
    return became known: partition s holds the forecasts made at s−h with y = r_s.

    The models train at a fixed cutoff (`forecasts.train_end`, or `train_sessions` into the
    history) and predict every later session with `step_size=1`, so a session's y_hat never
    changes when data is appended.
    """
    from trademl.models.forecasts.oos import oos_forecasts

    s = settings.get()
    params = forecast_params(s)
    b, f = _inputs(bars, features, s)
    oos = oos_forecasts(
        b,
        f,
        params,
        train_end=s.forecasts.train_end,
        min_train_sessions=s.forecasts.train_sessions,
    )
    grid = b.get_column("date").unique().sort().to_list()
    keys = sessions_of(context.partition_keys)
    out = by_realization(oos, grid, params.h).filter(pl.col("date").is_between(keys[0], keys[-1]))
    quality = forecast_quality(out)
    meta = frame_metadata(out, len(keys))
    meta |= {k: dg.MetadataValue.float(float(v)) for k, v in quality.items()}
    if out.height:
        meta["model_version"] = out.get_column("model_version")[-1]
    return dg.Output(out, metadata=meta)


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="forecasts",
    io_manager_key="lake",
    pool="gpu",
    ins={
        "bars": dg.AssetIn(**HISTORY),
        "features": dg.AssetIn(**HISTORY),
        "oos_signals": dg.AssetIn(**HISTORY),
    },
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset="oos_forecaster",
            blocking=True,
            description="The blend's OOS rank IC on the realized signals ≥ "
            "forecasts.min_oos_rank_ic with t-stat ≥ forecasts.min_oos_rank_ic_t; NaN fails "
            "closed.",
        )
    ],
    metadata={"partition_column": "date"},
    kinds={"pytorch", "mlflow"},
)
def oos_forecaster(
    context: dg.AssetExecutionContext,
    bars: pl.LazyFrame,
    features: pl.LazyFrame,
    oos_signals: pl.LazyFrame,
    settings: SettingsResource,
    mlflow: MlflowResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The live forecasters as of each session: PatchTST + NHITS trained on everything known
    by then, judged by the OOS quality of the realized signals, registered as
    `oos_forecaster` (alias `challenger`)."""
    from trademl.models.forecasts.live import fit_forecasters, save_forecasters

    s = settings.get()
    params = forecast_params(s)
    b, f = _inputs(bars, features, s)
    signals = oos_signals.collect()
    rows, failures = [], []
    for as_of in sessions_of(context.partition_keys):
        fc = fit_forecasters(b, f, params, as_of=as_of)
        q = forecast_quality(signals.filter(pl.col("date") <= as_of))
        ic, t = q["rank_ic_mean"], q.get("rank_ic_t_stat", math.nan)
        bars = s.forecasts
        passed = (
            math.isfinite(ic)
            and math.isfinite(t)
            and ic >= bars.min_oos_rank_ic
            and t >= bars.min_oos_rank_ic_t
        )
        fingerprint = data_fingerprint(b.filter(pl.col("date") <= as_of).select("date", "symbol"))
        with mlflow.start_run_for(context, data_fingerprint=fingerprint) as run:
            run.log_params({"as_of": as_of, "forecaster": fc.version, **_flat(params.to_dict())})
            run.log_metrics({k: float(v) for k, v in q.items()})
            with tempfile.TemporaryDirectory() as tmp:
                uri = run.log_model_files(save_forecasters(fc, Path(tmp) / "fc"), "forecasters")
        reason = (
            f"OOS rank IC {ic:.4g} (t {t:.2f}) vs bars {bars.min_oos_rank_ic:.4g} "
            f"(t {bars.min_oos_rank_ic_t:.2f})"
        )
        row = register_judged(
            mlflow,
            name=MODEL_NAME,
            run_id=run.run_id,
            model_uri=uri,
            as_of=as_of,
            passed=passed,
            check="rank_ic",
            reason=reason,
            failures=failures,
        )
        rows.append(
            {
                **row,
                "forecaster": fc.version,
                "passed_gate": passed,
                **{k: float(q.get(k, math.nan)) for k in QUALITY},
            }
        )
    out = pl.DataFrame(rows)
    yield dg.Output(
        out,
        metadata={
            "version": rows[-1]["version"],
            **{k: dg.MetadataValue.float(rows[-1][k]) for k in QUALITY},
        },
    )
    yield gate_result(GATE, failures, "OOS rank IC clears the bar")


def _load_forecasters(directory: Path):
    from trademl.models.forecasts.live import load_forecasters

    return load_forecasters(directory)


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


oos_forecaster_champion = champion_asset(
    model_asset="oos_forecaster",
    registered=MODEL_NAME,
    group="forecasts",
    reason_keys=("rank_ic_mean",),
)


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="forecasts",
    io_manager_key="lake",
    ins={
        "bars": dg.AssetIn(partition_mapping=FORECAST_INPUT_LOOKBACK),
        "features": dg.AssetIn(partition_mapping=FORECAST_INPUT_LOOKBACK),
    },
    metadata={"partition_column": "date"},
    kinds={"pytorch"},
)
def forecast_scores(
    context: dg.AssetExecutionContext,
    bars: pl.LazyFrame,
    features: pl.LazyFrame,
    settings: SettingsResource,
    lake_store: LakeResource,
    mlflow: MlflowResource,
) -> dg.Output[pl.DataFrame]:
    """Each session's step-h forecasts per symbol from the champion forecasters as of that
    session (never a later one), blended by the same ensemble as the OOS signals."""
    s = settings.get()
    b, f = _inputs(bars, features, s)
    history = champion_history(lake_store.lake, "oos_forecaster_champion")
    parts, missing = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelCache(mlflow, _load_forecasters, tmp)
        for session in sessions_of(context.partition_keys):
            row = champion_as_of(history, session)
            if row is None:
                missing += 1
                continue
            from trademl.models.forecasts.live import live_forecasts  # torch: only when needed

            day = live_forecasts(cache.get(row), b, f, as_of=session)
            parts.append(
                day.with_columns(
                    pl.lit(session).alias("date"), pl.lit(row["version"]).alias("forecaster")
                ).select(
                    "date",
                    "symbol",
                    "y_hat_patchtst",
                    "y_hat_nhits",
                    "y_hat",
                    "vol",
                    "trend",
                    "forecaster",
                )
            )
    schema = {
        "date": pl.Date,
        "symbol": pl.String,
        "y_hat_patchtst": pl.Float64,
        "y_hat_nhits": pl.Float64,
        "y_hat": pl.Float64,
        "vol": pl.Float64,
        "trend": pl.Float64,
        "forecaster": pl.String,
    }
    out = pl.concat(parts).cast(schema) if parts else pl.DataFrame(schema=schema)
    if missing:
        context.log.warning(f"{missing} sessions have no champion forecaster yet: no rows")
    meta = frame_metadata(out, len(context.partition_keys))
    meta["sessions_without_champion"] = dg.MetadataValue.int(missing)
    return dg.Output(out, metadata=meta)
