"""Thin, quiet wrappers around NeuralForecast: build the two models, fit, predict.

neuralforecast (and torch/lightning with it) is imported lazily inside these functions:
the import costs 5–10 s, and the ensemble / series modules must stay cheap to import.
Lightning is silenced (no progress bar, no logger, no checkpoints, no model summary), so
no `lightning_logs/` directory is ever written.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import polars as pl

from trademl.models.forecasts.params import ForecastParams

__all__ = ["NHITS_", "PATCHTST", "cv_predict", "fit_neuralforecast", "predict_last", "quiet"]

PATCHTST = "patchtst"
NHITS_ = "nhits"
_LOGGERS = ("lightning", "pytorch_lightning", "lightning.pytorch", "lightning_fabric")


def _silence_loggers() -> None:
    # importing lightning resets its loggers to INFO ("Seed set to …"): import it first
    import lightning_fabric  # noqa: F401
    import pytorch_lightning  # noqa: F401

    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Lightning loggers at ERROR and library warnings muted for the duration.

    The levels are set again on exit because importing pytorch_lightning / lightning_fabric
    resets their loggers to INFO; every import here happens inside such a block.
    """
    _silence_loggers()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _silence_loggers()


@contextlib.contextmanager
def torch_threads(params: ForecastParams) -> Iterator[None]:
    """`params.cpu_threads` intra-op threads on CPU for the duration, then torch's own."""
    if params.cpu_threads is None or params.accelerator != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(params.cpu_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _trainer_kwargs(params: ForecastParams) -> dict[str, Any]:
    return {
        "accelerator": params.accelerator,
        "devices": params.devices,
        "enable_progress_bar": False,
        "logger": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }


def _loss(name: str) -> Any:
    from neuralforecast.losses.pytorch import MAE, MSE, HuberLoss

    return {"mae": MAE, "mse": MSE, "huber": HuberLoss}[name]()


def make_models(params: ForecastParams, hist_exog: tuple[str, ...]) -> list[Any]:
    """Fresh, seeded PatchTST (endogenous only) and NHITS (features as hist_exog_list)."""
    with quiet():
        from neuralforecast.models import NHITS, PatchTST

        common: dict[str, Any] = dict(
            h=params.h,
            input_size=params.input_size,
            max_steps=params.max_steps,
            val_check_steps=params.max_steps,
            learning_rate=params.learning_rate,
            batch_size=params.batch_size,
            windows_batch_size=params.windows_batch_size,
            inference_windows_batch_size=params.inference_windows_batch_size,
            random_seed=params.seed,
            **_trainer_kwargs(params),
        )
        patchtst = PatchTST(
            alias=PATCHTST,
            loss=_loss(params.loss),
            patch_len=params.patch_len,
            stride=params.stride,
            hidden_size=params.hidden_size,
            n_heads=params.n_heads,
            encoder_layers=params.encoder_layers,
            linear_hidden_size=params.linear_hidden_size,
            dropout=params.dropout,
            fc_dropout=params.dropout,
            scaler_type="identity",  # RevIN inside PatchTST normalizes each input window
            **common,
        )
        units = params.nhits_mlp_units
        nhits = NHITS(
            alias=NHITS_,
            loss=_loss(params.loss),
            hist_exog_list=list(hist_exog) or None,
            n_blocks=list(params.nhits_n_blocks),
            mlp_units=[[units, units]] * len(params.nhits_n_blocks),
            n_pool_kernel_size=list(params.nhits_pool_kernel_size),
            n_freq_downsample=list(params.nhits_freq_downsample),
            scaler_type=params.nhits_scaler_type,
            **common,
        )
    return [patchtst, nhits]


def fit_neuralforecast(
    train_df: pl.DataFrame, params: ForecastParams, hist_exog: tuple[str, ...]
) -> Any:
    """A new NeuralForecast (freq=1, no local scalers) fitted on `train_df` only, val_size=0."""
    longest = int(train_df.group_by("unique_id").len()["len"].max() or 0)
    if longest < params.input_size + params.h:
        raise ValueError(
            f"training span too short: the longest series has {longest} sessions up to the "
            f"training cutoff, need at least input_size + h = {params.input_size + params.h}"
        )
    models = make_models(params, hist_exog)  # imports neuralforecast, then re-silences
    with quiet(), torch_threads(params):
        from neuralforecast import NeuralForecast

        nf = NeuralForecast(models=models, freq=1)
        nf.fit(df=train_df, val_size=0)
    return nf


def _model_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(PATCHTST).cast(pl.Float64).alias("y_hat_patchtst"),
        pl.col(NHITS_).cast(pl.Float64).alias("y_hat_nhits"),
    )


def cv_predict(
    nf: Any, pred_df: pl.DataFrame, n_windows: int, params: ForecastParams
) -> pl.DataFrame:
    """Step-h forecasts at the last `n_windows` cutoffs of `pred_df`, from the fitted weights.

    `pred_df` holds every series on the same ds grid, ending h rows after the last cutoff.
    Returns unique_id, cutoff, y_hat_patchtst, y_hat_nhits.
    """
    with quiet(), torch_threads(params):
        cv = nf.cross_validation(
            df=pred_df, use_fitted=True, n_windows=n_windows, step_size=1, refit=False
        )
    cv = cv.filter(pl.col("ds") == pl.col("cutoff") + params.h)
    return _model_columns(cv).select("unique_id", "cutoff", "y_hat_patchtst", "y_hat_nhits")


def predict_last(nf: Any, df: pl.DataFrame, params: ForecastParams) -> pl.DataFrame:
    """Step-h forecasts from the end of `df` (unique_id, y_hat_patchtst, y_hat_nhits)."""
    with quiet(), torch_threads(params):
        fc = nf.predict(df=df)
    last = df.group_by("unique_id").agg(pl.col("ds").max().alias("_last"))
    fc = fc.join(last, on="unique_id").filter(pl.col("ds") == pl.col("_last") + params.h)
    return _model_columns(fc).select("unique_id", "y_hat_patchtst", "y_hat_nhits")
