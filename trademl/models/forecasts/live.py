"""Live forecasting: fit on everything known at an as-of session, save/load, forecast at d.

The serving path reuses the OOS path's pieces — `returns_panel`, `add_context` (vol,
trend), `prediction_frame` and `finish_forecasts` (which calls `ensemble`) — so a live
forecast at d from the models trained at T equals the OOS row for d with training cutoff T.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from trademl.models.forecasts.engine import fit_neuralforecast, predict_last, quiet
from trademl.models.forecasts.oos import build_panel, finish_forecasts
from trademl.models.forecasts.params import ForecastParams, model_version
from trademl.models.forecasts.series import prediction_frame, training_frame

__all__ = [
    "LIVE_COLUMNS",
    "Forecasters",
    "fit_forecasters",
    "live_forecasts",
    "load_forecasters",
    "save_forecasters",
]

LIVE_COLUMNS = (
    "date",
    "symbol",
    "y_hat_patchtst",
    "y_hat_nhits",
    "w_patchtst",
    "y_hat",
    "vol",
    "trend",
    "n_obs",
    "train_end",
    "model_version",
)
_NF_DIR = "neuralforecast"
_META = "forecasters.json"


@dataclass(frozen=True)
class Forecasters:
    """A fitted NeuralForecast (PatchTST + NHITS) with what serving needs to use it."""

    nf: Any
    params: ForecastParams
    train_end: dt.date
    features: tuple[str, ...]

    @property
    def version(self) -> str:
        return model_version(self.params, self.features, self.train_end)


def _up_to(frame: pl.DataFrame | pl.LazyFrame | None, as_of: dt.date | None) -> Any:
    if frame is None or as_of is None:
        return frame
    return frame.filter(pl.col("date").cast(pl.Date) <= as_of)


def fit_forecasters(
    bars: pl.DataFrame | pl.LazyFrame,
    features: pl.DataFrame | pl.LazyFrame | None = None,
    params: ForecastParams | None = None,
    *,
    as_of: dt.date | None = None,
) -> Forecasters:
    """Train both models on all sessions ≤ as_of (default: the last session in `bars`).

    Rows after `as_of` are dropped before anything is computed.
    """
    params = params or ForecastParams()
    panel, names = build_panel(_up_to(bars, as_of), _up_to(features, as_of), params)
    cutoff = int(panel["ds"].max())
    nf = fit_neuralforecast(training_frame(panel, names, cutoff), params, names)
    train_end = panel.filter(pl.col("ds") == cutoff)["date"][0]
    return Forecasters(nf=nf, params=params, train_end=train_end, features=names)


def save_forecasters(forecasters: Forecasters, directory: str | Path) -> Path:
    """Write the NeuralForecast models (safetensors + JSON) and our metadata to `directory`."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    with quiet():
        forecasters.nf.save(path=str(root / _NF_DIR), save_dataset=False, overwrite=True)
    meta = {
        "params": forecasters.params.to_dict(),
        "train_end": forecasters.train_end.isoformat(),
        "features": list(forecasters.features),
        "version": forecasters.version,
    }
    (root / _META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return root


def load_forecasters(directory: str | Path, *, accelerator: str | None = None) -> Forecasters:
    """Read what `save_forecasters` wrote (no pickle is executed).

    `accelerator` ("cpu" | "gpu") moves the models to other hardware than they were
    trained on, e.g. serving GPU-trained models on a CPU box; the version is unchanged.
    """
    root = Path(directory)
    meta_path = root / _META
    if not meta_path.is_file():
        raise FileNotFoundError(f"no {_META} in {root}: not a saved forecasters directory")
    meta = json.loads(meta_path.read_text())
    params = ForecastParams.from_dict(meta["params"])
    if accelerator is not None:
        params = dataclasses.replace(params, accelerator=accelerator, devices=1)
    with quiet():
        from neuralforecast import NeuralForecast

        kwargs = {"map_location": "cpu"} if params.accelerator == "cpu" else {}
        nf = NeuralForecast.load(str(root / _NF_DIR), **kwargs)
        for model in nf.models:
            model.trainer_kwargs.update(accelerator=params.accelerator, devices=params.devices)
    return Forecasters(
        nf=nf,
        params=params,
        train_end=dt.date.fromisoformat(meta["train_end"]),
        features=tuple(meta["features"]),
    )


def live_forecasts(
    forecasters: Forecasters,
    bars: pl.DataFrame | pl.LazyFrame,
    features: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    as_of: dt.date | None = None,
) -> pl.DataFrame:
    """Step-h forecasts made at session d (the last session ≤ as_of in `bars`).

    One row per symbol with a bar at d: both models, the PatchTST weight, the blend from
    the same `ensemble` as the OOS data, vol and trend at d, and the models' version.
    `bars` needs only the last `input_size` sessions (fewer are zero-padded and masked,
    as in the OOS path). Raises if d precedes the training cutoff (that would use
    models that saw the future of d) or if a trained feature column is missing.
    """
    params = forecasters.params
    names = forecasters.features
    if names:
        if features is None:
            raise ValueError(f"features: the forecasters were trained with {list(names)}")
        cols = features.collect_schema().names()
        missing = [c for c in names if c not in cols]
        if missing:
            raise ValueError(f"features: missing trained feature column(s) {missing}")
        features = features.select("date", "symbol", *names)
    else:
        features = None
    panel, _ = build_panel(_up_to(bars, as_of), _up_to(features, as_of), params)
    d = int(panel["ds"].max())
    d_date = panel.filter(pl.col("ds") == d)["date"][0]
    if d_date < forecasters.train_end:
        raise ValueError(
            f"session {d_date} precedes the models' training cutoff {forecasters.train_end}"
        )
    symbols = sorted(
        panel.filter(pl.col("has_bar") & (pl.col("ds") == d))["symbol"].unique().to_list()
    )
    df = prediction_frame(panel, names, symbols, max(0, d - params.input_size + 1), d)
    fc = predict_last(forecasters.nf, df, params)
    fc = fc.rename({"unique_id": "symbol"}).with_columns(
        pl.lit(d, dtype=pl.Int64).alias("ds"),
        pl.lit(forecasters.train_end).alias("train_end"),
        pl.lit(forecasters.version).alias("model_version"),
    )
    return finish_forecasts(fc, panel, params).select(LIVE_COLUMNS)
