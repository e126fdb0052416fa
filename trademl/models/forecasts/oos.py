"""Out-of-sample "rotten apple" forecast signals: PatchTST + NHITS walk-forward forecasts.

Each row is a forecast made at session d's close of the return a decision at d earns,
r_{d+h} (h = lag + 1), by models trained only on sessions ≤ a FIXED training cutoff:
`train_end` for the first block and, with `refit=R`, train_end + k·R for block k. The
cutoffs are anchored to sessions, not to the end of the data, so appending later sessions
never changes an earlier y_hat (point in time).

What NeuralForecast 3.3's `cross_validation` does on its own (read from core.py and
common/_base_model.py), and why we do not let it choose the training data:

- `refit=False`, fresh models: `_prepare_fit` builds the dataset from the WHOLE df and,
  if `local_scaler_type` is set, fits the per-series scalers on all of it, test windows
  included (a leak). Each model is then fit with test_size = h + step_size·(n_windows−1)
  and `val_size`: training windows come from each series minus its last
  val_size + test_size rows; validation windows (val loss / early stopping) from the
  val_size rows just before the test block. Both are counted per series from its own
  end, so the training cutoff is "last row − test_size": it moves when data is appended
  and differs across series with ragged ends.
- `refit=R` (int): `utilsforecast.backtest_splits` cuts windows back from the global last
  date and calls `fit(train)` every R windows, again anchored to the end of the data.
- `use_fitted=True` predicts every window with the already-fitted weights (no training);
  local scalers, if any, would be refit on the df passed (a leak), so we use none.
- Window-level scaling (`scaler_type`, PatchTST's RevIN) sees only the input part of a
  window: `_normalization` masks the last h steps and `_parse_windows` hands the model
  only the first input_size steps of y and of hist exog, so the horizon values inside a
  CV window are never inputs.

So each block here is: `NeuralForecast.fit` on a frame cut at the block's cutoff
(val_size=0, no local scaler), then `cross_validation(use_fitted=True, step_size=1)` over
the block's cutoffs, on a grid padded with h masked rows past the last session so the
newest sessions get forecasts too (those rows are horizon only, never inputs).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from trademl.models.forecasts.blend import ensemble, ensemble_weights
from trademl.models.forecasts.engine import cv_predict, fit_neuralforecast
from trademl.models.forecasts.params import ForecastParams, model_version
from trademl.models.forecasts.series import (
    add_context,
    attach_features,
    prediction_frame,
    realized_target,
    returns_panel,
    session_ds,
    training_frame,
    validate_features,
)

__all__ = ["OOS_COLUMNS", "build_panel", "finish_forecasts", "oos_forecasts"]

OOS_COLUMNS = (
    "date",
    "symbol",
    "y_hat_patchtst",
    "y_hat_nhits",
    "w_patchtst",
    "y_hat",
    "vol",
    "trend",
    "n_obs",
    "y",
    "train_end",
    "model_version",
)


def build_panel(
    bars: pl.DataFrame | pl.LazyFrame,
    features: pl.DataFrame | pl.LazyFrame | None,
    params: ForecastParams,
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The session grid with r, features, vol, trend and the realized target y."""
    panel = returns_panel(bars)
    feats, names = validate_features(features) if features is not None else (None, ())
    panel = attach_features(panel, feats, names)
    panel = add_context(panel, params.vol_window, params.trend_window, params.input_size)
    return realized_target(panel, params.h), names


def finish_forecasts(fc: pl.DataFrame, panel: pl.DataFrame, params: ForecastParams) -> pl.DataFrame:
    """Join forecasts (symbol, ds, y_hat_*) to vol/trend/y and blend with `ensemble`.

    Shared by the OOS and live paths so both compute the blend the same way.
    """
    keep = ("date", "ds", "symbol", "vol", "trend", "n_obs", "y")
    cols = [c for c in keep if c in panel.columns]
    out = fc.join(panel.select(cols), on=["symbol", "ds"], how="inner")
    vol = out["vol"].to_numpy().astype(np.float64)
    w = ensemble_weights(vol, params.ensemble)
    y_hat = ensemble(out["y_hat_patchtst"], out["y_hat_nhits"], vol, params.ensemble)
    return out.with_columns(pl.Series("w_patchtst", w), pl.Series("y_hat", y_hat)).sort(
        "date", "symbol"
    )


def oos_forecasts(
    bars: pl.DataFrame | pl.LazyFrame,
    features: pl.DataFrame | pl.LazyFrame | None = None,
    params: ForecastParams | None = None,
    *,
    train_end: dt.date | None = None,
    min_train_sessions: int = 252,
) -> pl.DataFrame:
    """Walk-forward OOS forecasts for every (symbol, session ≥ train_end) with a bar.

    Parameters
    ----------
    bars : long bars (date, symbol, open, …); only `open` is used.
    features : optional long frame (date, symbol, <numeric columns>) fed to NHITS as
        hist_exog_list (PatchTST takes no exogenous inputs).
    params : ForecastParams (models, lag → h, refit cadence, vol/trend windows, blend).
    train_end : the first training cutoff (the last session ≤ it). Default: the
        `min_train_sessions`-th session of `bars` — anchored to the start of the data, so
        still point in time; pass a date in production.
    min_train_sessions : see `train_end`.

    Returns
    -------
    pl.DataFrame with OOS_COLUMNS, one row per (session d, symbol): the step-h forecasts of
    r_{d+h} by each model and blended, the PatchTST weight, vol, trend and n_obs at d
    (see `series`), the realized y = r_{d+h} (null if not yet known), and the training
    cutoff (`train_end`) and `model_version` of the models that made it.
    """
    params = params or ForecastParams()
    panel, names = build_panel(bars, features, params)
    last_ds = int(panel["ds"].max())
    if train_end is not None:
        t0 = session_ds(panel, train_end, "train_end")
    else:
        if min_train_sessions < 1:
            raise ValueError(f"min_train_sessions={min_train_sessions}: expected >= 1")
        t0 = min_train_sessions - 1
        if t0 > last_ds:
            raise ValueError(
                f"bars hold {last_ds + 1} sessions, fewer than min_train_sessions="
                f"{min_train_sessions}: no session is left to forecast"
            )
    step = params.refit_every or (last_ds - t0 + 1)
    dates = panel.select("ds", "date").unique("ds").sort("ds")["date"]
    pieces: list[pl.DataFrame] = []
    for start in range(t0, last_ds + 1, step):
        stop = min(start + step - 1, last_ds)
        active = panel.filter(pl.col("has_bar") & pl.col("ds").is_between(start, stop))
        symbols = sorted(active["symbol"].unique().to_list())
        if not symbols:
            continue
        nf = fit_neuralforecast(training_frame(panel, names, start), params, names)
        ds_lo = max(0, start - params.input_size + 1)
        pred_df = prediction_frame(panel, names, symbols, ds_lo, stop + params.h)
        fc = cv_predict(nf, pred_df, n_windows=stop - start + 1, params=params)
        cutoff_date = dates[start]
        pieces.append(
            fc.rename({"unique_id": "symbol", "cutoff": "ds"}).with_columns(
                pl.lit(cutoff_date).alias("train_end"),
                pl.lit(model_version(params, names, cutoff_date)).alias("model_version"),
            )
        )
    if not pieces:
        return pl.DataFrame(schema=_empty_schema())
    fc = pl.concat(pieces)
    has_bar = panel.filter(pl.col("has_bar")).select("symbol", "ds")
    fc = fc.join(has_bar, on=["symbol", "ds"], how="inner")
    return finish_forecasts(fc, panel, params).select(OOS_COLUMNS)


def _empty_schema() -> dict[str, pl.DataType]:
    f = pl.Float64()
    return {
        "date": pl.Date(),
        "symbol": pl.String(),
        "y_hat_patchtst": f,
        "y_hat_nhits": f,
        "w_patchtst": f,
        "y_hat": f,
        "vol": f,
        "trend": f,
        "n_obs": pl.Int32(),
        "y": f,
        "train_end": pl.Date(),
        "model_version": pl.String(),
    }
