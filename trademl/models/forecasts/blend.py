"""The dynamic PatchTST/NHITS blend: one function for OOS data and live serving alike.

Pure numpy (no torch, no neuralforecast) so the daily scoring path can import it cheaply.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trademl.models.forecasts.params import EnsembleParams

__all__ = ["ensemble", "ensemble_weights"]


def _as_float(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray) and hasattr(x, "to_numpy"):
        x = x.to_numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def ensemble_weights(vol: Any, params: EnsembleParams) -> np.ndarray:
    """PatchTST weight per row from recent realized vol (NaN/None vol → midpoint weight).

    vol <= vol_low → `w_patchtst_calm`; vol >= vol_high → `w_patchtst_stressed`; linear
    in between. The NHITS weight is one minus this.
    """
    v = _as_float(vol)
    frac = np.clip((v - params.vol_low) / (params.vol_high - params.vol_low), 0.0, 1.0)
    w = params.w_patchtst_calm + frac * (params.w_patchtst_stressed - params.w_patchtst_calm)
    mid = 0.5 * (params.w_patchtst_calm + params.w_patchtst_stressed)
    return np.where(np.isfinite(v), w, mid)


def ensemble(y_hat_patchtst: Any, y_hat_nhits: Any, vol: Any, params: EnsembleParams) -> np.ndarray:
    """Blend the two forecasts row by row with `ensemble_weights(vol)`.

    Parameters
    ----------
    y_hat_patchtst, y_hat_nhits : array-like of float, same length
        Step-h return forecasts of the two models.
    vol : array-like of float, same length
        Recent realized vol of the symbol's open-to-open returns at the forecast session.
    params : EnsembleParams
        Thresholds and weights.

    Returns
    -------
    np.ndarray of float64: w·PatchTST + (1 − w)·NHITS; NaN where either forecast is NaN.
    """
    p = _as_float(y_hat_patchtst)
    n = _as_float(y_hat_nhits)
    v = _as_float(vol)
    if not (p.shape == n.shape == v.shape):
        raise ValueError(
            f"ensemble inputs differ in length: y_hat_patchtst {p.shape[0]}, "
            f"y_hat_nhits {n.shape[0]}, vol {v.shape[0]}"
        )
    w = ensemble_weights(v, params)
    return w * p + (1.0 - w) * n
