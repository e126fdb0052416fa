"""Sample weights for alpha training: exponential time decay and a market-volatility regime.

Both are point-in-time: a decay weight depends only on the sample's age relative to the
reference session, and a regime flag at session t uses only market returns up to t.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from typing import Any

import numpy as np

__all__ = ["DAYS_PER_MONTH", "high_vol_flags", "market_vol_regime", "time_decay_weights"]

DAYS_PER_MONTH = 30.4375  # 365.25 / 12


def _as_datetime64(values: Any) -> np.ndarray:
    """1-D datetime64 array from dates, datetimes, datetime64 or a polars/pandas series."""
    if not isinstance(values, np.ndarray) and hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.datetime64):
        arr = np.asarray(arr, dtype="datetime64[us]")
    arr = arr.reshape(-1)
    if np.isnat(arr).any():
        raise ValueError("sessions contain NaT/None")
    return arr


def _as_scalar_datetime64(value: Any) -> np.datetime64:
    if isinstance(value, dt.datetime | dt.date | str | np.datetime64):
        out = np.datetime64(value)
        if np.isnat(out):
            raise ValueError("as_of is NaT")
        return out
    raise TypeError(f"as_of must be a date, datetime, datetime64 or ISO string, got {value!r}")


def time_decay_weights(
    sessions: Any, *, half_life_months: float | None, as_of: Any = None
) -> np.ndarray:
    """Per-sample weights 0.5 ** (age_months / half_life), normalized to mean 1.

    Age is measured from `as_of` (default: the latest session) in months of
    `DAYS_PER_MONTH` days, at the sessions' own resolution (dates → whole days).
    `half_life_months=None` gives ones. Sessions after `as_of` raise ValueError.
    """
    t = _as_datetime64(sessions)
    if half_life_months is None:
        return np.ones(t.shape[0], dtype=np.float64)
    if not (math.isfinite(half_life_months) and half_life_months > 0):
        raise ValueError(f"half_life_months must be positive, got {half_life_months}")
    if t.shape[0] == 0:
        return np.ones(0, dtype=np.float64)
    ref = t.max() if as_of is None else _as_scalar_datetime64(as_of)
    age_days = (ref - t) / np.timedelta64(1, "D")
    if (age_days < 0).any():
        raise ValueError("sessions after as_of would be look-ahead")
    w = 0.5 ** (age_days / DAYS_PER_MONTH / half_life_months)
    return w / w.mean()


def _expanding_quantile_exceeds(x: np.ndarray, quantile: float, min_history: int) -> np.ndarray:
    """x[t] > quantile of the finite x[s], s < t (linear interpolation), once min_history exist."""
    out = np.zeros(x.shape[0], dtype=bool)
    past: list[float] = []  # sorted finite values seen so far
    for t, v in enumerate(x):
        finite = math.isfinite(v)
        m = len(past)
        if finite and m >= max(min_history, 1):
            pos = quantile * (m - 1)
            lo = math.floor(pos)
            hi = min(lo + 1, m - 1)
            threshold = past[lo] + (past[hi] - past[lo]) * (pos - lo)
            out[t] = v > threshold
        if finite:
            bisect.insort(past, float(v))
    return out


def high_vol_flags(vol: Any, *, quantile: float = 0.8, min_history: int = 60) -> np.ndarray:
    """Flag sessions whose (market) vol exceeds the expanding `quantile` of all earlier vols.

    `vol` is in session order; NaN is never flagged. Point in time: a flag uses only
    earlier values, so it never changes when later sessions are appended.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1, got {min_history}")
    v = np.asarray(vol, dtype=np.float64).reshape(-1)
    return _expanding_quantile_exceeds(v, quantile, min_history)


def _trailing_std(r: np.ndarray, window: int) -> np.ndarray:
    """Sample std (ddof=1) of the `window` returns ending at t; NaN if any is missing."""
    vol = np.full(r.shape[0], np.nan)
    if r.shape[0] < window:
        return vol
    win = np.lib.stride_tricks.sliding_window_view(r, window)
    ok = np.isfinite(win).all(axis=1)
    vol[window - 1 :][ok] = win[ok].std(axis=1, ddof=1)
    return vol


def market_vol_regime(
    returns_by_session: Any,
    *,
    window: int = 20,
    quantile: float = 0.8,
    min_history: int = 60,
    session_col: str = "session",
    return_col: str = "mkt_ret",
) -> np.ndarray:
    """Boolean high-volatility flag per session, point in time.

    `returns_by_session` is a polars DataFrame with `session_col` and `return_col` (the
    equal-weight market return; any row order, sessions unique) or a 1-D array of returns
    in session order. A session is flagged when the trailing `window`-session realized vol
    (ddof=1) exceeds the expanding `quantile` of the vols of all earlier sessions, once at
    least `min_history` earlier vols exist. A window with a missing return has no vol and
    is never flagged. The result is aligned with the input rows, and a flag never changes
    when later sessions are appended.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1, got {min_history}")
    order: np.ndarray | None = None
    if hasattr(returns_by_session, "columns"):  # polars (or pandas) frame
        sessions = _as_datetime64(returns_by_session[session_col])
        r = np.asarray(returns_by_session[return_col].to_numpy(), dtype=np.float64)
        order = np.argsort(sessions, kind="stable")
        if sessions.shape[0] > 1 and (np.diff(sessions[order]) == np.timedelta64(0)).any():
            raise ValueError(f"duplicate sessions in {session_col!r}")
        r = r[order]
    else:
        r = np.asarray(returns_by_session, dtype=np.float64)
        if r.ndim != 1:
            raise ValueError(f"returns must be 1-D, got shape {r.shape}")
    flags = _expanding_quantile_exceeds(_trailing_std(r, window), quantile, min_history)
    if order is None:
        return flags
    out = np.empty_like(flags)
    out[order] = flags
    return out
