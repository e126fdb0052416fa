"""Forward returns measured from the execution price, on the (session × symbol) grid.

A decision taken at session t's close trades at session t+lag, so the label is the return of
the execution price from t+lag to t+lag+horizon; it becomes known at t1 = t+lag+horizon.
"""

from __future__ import annotations

import numpy as np


def shift_up(a: np.ndarray, n: int, fill: float = np.nan) -> np.ndarray:
    """Row t of the result is row t+n of `a` (rows past the end are `fill`)."""
    if n < 0:
        raise ValueError(f"shift must be >= 0, got {n}")
    out = np.full_like(a, fill)
    if n < a.shape[0]:
        out[: a.shape[0] - n] = a[n:]
    return out


def forward_returns(price: np.ndarray, *, horizon: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward return of the execution price for every decision session.

    `price` is [T sessions, N symbols] with NaN for a missing bar. Returns `(value, t1)`, both
    [T, N] and indexed by the decision session t: value[t] = price[t+lag+horizon] /
    price[t+lag] − 1 and t1[t] = t+lag+horizon (int64). Where the entry or exit price is
    missing, or the exit session is past the grid, value is NaN and t1 is −1 (never filled).
    """
    if horizon < 1 or lag < 0:
        raise ValueError(f"need horizon >= 1 and lag >= 0, got horizon={horizon}, lag={lag}")
    price = np.asarray(price, dtype=np.float64)
    if price.ndim != 2:
        raise ValueError(f"price must be a [T, N] matrix, got shape {price.shape}")
    entry = shift_up(price, lag)
    exit_ = shift_up(price, lag + horizon)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = exit_ / entry - 1.0
    ok = np.isfinite(value)
    value[~ok] = np.nan
    t_idx = np.arange(price.shape[0], dtype=np.int64)[:, None] + (lag + horizon)
    t1 = np.where(ok, t_idx, -1)
    return value, t1
