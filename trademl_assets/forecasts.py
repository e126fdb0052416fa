"""Forecasts sleeve: honest OOS signals ("rotten apples"), the live forecasters as an alpha
sleeve (their blend ranked within each session), their scores.

NeuralForecast (and torch) are imported inside the assets that train or predict, never at
module import: loading the code location stays fast.
"""

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.models.forecasts.apples import by_realization, forecast_quality
from trademl.models.forecasts.promotion import decide
from trademl.models.forecasts.sleeve import QUALITY, forecast_oof, quality_metrics, xs_rank
from trademl.models.sleeve import NotTrainable, Trained
from trademl.params import forecast_params
from trademl_assets.k8s import gpu_step_tags
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import (
    FORECAST_HISTORY,
    FORECAST_INPUT_LOOKBACK,
    SESSIONS,
    SINGLE_RUN,
    sessions_of,
)
from trademl_assets.sleeves import SleeveSpec

HISTORY = {"partition_mapping": FORECAST_HISTORY, "metadata": {MISSING_OK: True}}


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
    op_tags=gpu_step_tags(),
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


def train_forecasters(inputs: Mapping[str, Any], as_of: dt.date, s: Settings, log: Any) -> Trained:
    """The live forecasters as of `as_of` (PatchTST + NHITS on everything known by then),
    judged by the OOS quality of the realized signals, with those signals as the OOF."""
    from trademl.models.forecasts.live import fit_forecasters, save_forecasters

    params = forecast_params(s)
    b, f = _inputs(inputs["bars"], inputs["features"], s)
    signals = inputs["oos_signals"].filter(pl.col("date") <= as_of).collect()
    if signals.height == 0:
        raise NotTrainable(
            f"no realized OOS signals up to {as_of}: materialize oos_signals for the window"
        )
    fc = fit_forecasters(b, f, params, as_of=as_of)
    log(f"forecasters {fc.version} trained up to {as_of}")
    oof, layout = forecast_oof(signals)
    return Trained(
        metrics=quality_metrics(signals),
        params={"forecaster": fc.version, **_flat(params.to_dict())},
        save=lambda d: save_forecasters(fc, d),
        fingerprint=b.filter(pl.col("date") <= as_of).select("date", "symbol"),
        n_trials=1,
        oof=oof,
        layout=layout,
        info={"forecaster": fc.version},
    )


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


def score_forecasts(
    fc: Any, inputs: Mapping[str, Any], session: dt.date, s: Settings
) -> pl.DataFrame:
    """The session's blended step-h forecasts from `fc`, ranked within the session."""
    from trademl.models.forecasts.live import live_forecasts  # torch: only when scoring

    b, f = _inputs(inputs["bars"], inputs["features"], s)
    day = live_forecasts(fc, b, f, as_of=session)
    return (
        day.select("symbol", pl.col("y_hat").alias("score"))
        .with_columns(pl.lit(session).alias("date"))
        .with_columns(xs_rank("score", "date"))
    )


#: A live forecast at d reads the models' input window; a backfill that starts with the
#: history reads what exists (sessions without enough history get no forecast).
SCORE_INS = {
    name: dg.AssetIn(name, partition_mapping=FORECAST_INPUT_LOOKBACK, metadata={MISSING_OK: True})
    for name in ("bars", "features")
}


SPEC = SleeveSpec(
    name="forecasts",
    kind="alpha",
    group="forecasts",
    ins={
        "bars": dg.AssetIn("bars", **HISTORY),
        "features": dg.AssetIn("features", **HISTORY),
        "oos_signals": dg.AssetIn("oos_signals", **HISTORY),
    },
    train=train_forecasters,
    decide=lambda m, champ, s: decide(m, champ, s.forecasts.promotion),
    min_shadow=lambda s: s.forecasts.promotion.min_shadow_sessions,
    gate_description="The blend's OOS rank IC on the realized signals ≥ "
    "forecasts.promotion.min_oos_rank_ic with t-stat ≥ min_oos_rank_ic_t, AND above the "
    "champion's as of the session; NaN fails closed.",
    load=_load_forecasters,
    description="The live forecasters as of the session (PatchTST + NHITS on everything known "
    "by then), registered as `forecasts`; OOF: the realized walk-forward signals, ranked.",
    row_metrics=QUALITY,
    pool="gpu",
    kinds=frozenset({"pytorch", "mlflow"}),
    score_ins=SCORE_INS,
    score=score_forecasts,
    score_kinds=frozenset({"pytorch"}),
)
