"""One cross-sectional normalization for every score the stacker and the router combine:
within each session, z = (x − mean) / std, clipped to ±`CLIP`; a missing score is 0 (neutral),
and so is every score of a session with fewer than two values or no dispersion.

The same function turns the sleeves' out-of-fold predictions into training inputs and their
live scores into serving inputs (train as you serve), so the weights mean the same thing in
both places whatever each sleeve's raw scale. It is O(n) (two bincounts per column), which is
what lets the stacker renormalize every sleeve's every CPCV path in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = ["CLIP", "session_codes", "xs_zscore", "zscore_columns"]

#: Scores beyond ±CLIP cross-sectional σ are clipped (a sleeve's outlier cannot dominate).
CLIP = 3.0


def session_codes(dates: pl.Series | np.ndarray) -> np.ndarray:
    """Dense 0-based codes of each row's session (any order of rows)."""
    values = dates.to_physical().to_numpy() if isinstance(dates, pl.Series) else dates
    _, codes = np.unique(np.asarray(values), return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def xs_zscore(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-session clipped z-score of `x` (float64, NaN/inf → 0); `codes` from `session_codes`."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    x0 = np.where(ok, x, 0.0)
    n_sess = int(codes.max()) + 1 if codes.size else 0
    n = np.bincount(codes, weights=ok.astype(np.float64), minlength=n_sess)
    s1 = np.bincount(codes, weights=x0, minlength=n_sess)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        dev = np.where(ok, x0 - mean[codes], 0.0)
        var = np.bincount(codes, weights=dev * dev, minlength=n_sess) / n
        sd = np.sqrt(var)
        z = dev / sd[codes]
    usable = ok & (n[codes] > 1) & (sd[codes] > 1e-12 * (1.0 + np.abs(mean[codes])))
    return np.where(usable, np.clip(z, -CLIP, CLIP), 0.0)


def zscore_columns(frame: pl.DataFrame, cols: Sequence[str], by: str = "date") -> pl.DataFrame:
    """`frame` with each of `cols` replaced by its per-`by` clipped z-score (Float64)."""
    if frame.height == 0:
        return frame.with_columns([pl.col(c).cast(pl.Float64) for c in cols])
    codes = session_codes(frame.get_column(by))
    return frame.with_columns(
        [
            pl.Series(c, xs_zscore(frame.get_column(c).cast(pl.Float64).to_numpy(), codes))
            for c in cols
        ]
    )
