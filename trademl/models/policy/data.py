"""Input frames of the sizing policy: column checks, per-symbol previous rows, the time-ordered
train/validation split and per-session PnL aggregation.

A frame holds one row per (symbol, session): `session`, `symbol`, the state columns `y_hat`
(out-of-sample forecast of the next tradable return), `vol` (recent realized vol, in the same
per-session units as y), `trend`, any extra state columns, and for training/evaluation `y`,
the realized return a position decided at that session earns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from trademl.models.policy.beta import trading_pnl

__all__ = [
    "BASE_FEATURES",
    "check_frame",
    "finite_rows",
    "previous_index",
    "session_codes",
    "session_mean_pnl",
    "time_split",
]

BASE_FEATURES: tuple[str, ...] = ("y_hat", "vol", "trend")


def check_frame(frame: pl.DataFrame, features: Sequence[str], *, need_y: bool) -> None:
    """Raise ValueError naming the first missing column, a null session/symbol, a non-numeric
    state column, or a duplicated (symbol, session) pair."""
    need = ["session", "symbol", *features, *(["y"] if need_y else [])]
    for col in need:
        if col not in frame.columns:
            raise ValueError(f"policy frame is missing column {col!r} (needs {need})")
    for col in ("session", "symbol"):
        nulls = frame.get_column(col).null_count()
        if nulls:
            raise ValueError(f"column {col!r} has {nulls} null values: expected none")
    for col in [*features, *(["y"] if need_y else [])]:
        if not frame.schema[col].is_numeric():
            raise ValueError(f"column {col!r} must be numeric, got {frame.schema[col]}")
    dup = frame.select("symbol", "session").is_duplicated()
    if dup.any():
        row = frame.filter(dup).row(0, named=True)
        raise ValueError(
            f"duplicate (symbol, session) rows, e.g. symbol={row['symbol']!r} "
            f"session={row['session']}: expected one row per symbol and session"
        )


def finite_rows(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Boolean mask of rows whose `columns` are all finite (not null, not NaN/inf)."""
    mask = np.ones(frame.height, dtype=bool)
    for col in columns:
        mask &= np.isfinite(frame.get_column(col).cast(pl.Float64).fill_null(np.nan).to_numpy())
    return mask


def previous_index(frame: pl.DataFrame) -> np.ndarray:
    """For each row, the row index of the same symbol's previous session in `frame`, or −1.

    Rows need not be sorted. The previous row is the latest earlier session present for that
    symbol (a gap in the data is not a flat period).
    """
    idx = (
        frame.select("symbol", "session")
        .with_row_index("_row")
        .sort("symbol", "session")
        .with_columns(_prev=pl.col("_row").shift(1).over("symbol"))
        .sort("_row")
        .get_column("_prev")
    )
    return idx.fill_null(-1).cast(pl.Int64).to_numpy()


def session_codes(frame: pl.DataFrame) -> tuple[np.ndarray, pl.Series]:
    """Dense 0-based codes of each row's session in session order, and the sorted sessions."""
    sessions = frame.get_column("session").unique().sort()
    codes = frame.select(pl.col("session").rank("dense") - 1).to_series().to_numpy()
    return codes.astype(np.int64), sessions


def session_mean_pnl(
    pos: np.ndarray,
    y: np.ndarray,
    prev_idx: np.ndarray,
    codes: np.ndarray,
    n_sessions: int,
    cost_bps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-session PnL (mean over the symbols of the session) net of costs, and turnover.

    pos is the signed position per row (NaN = flat); the cost is paid on |pos − the symbol's
    previous position| (0 before its first row). Returns (pnl, mean |Δpos|) per session code.
    """
    pos = np.where(np.isfinite(pos), pos, 0.0)
    prev = np.where(prev_idx >= 0, pos[np.maximum(prev_idx, 0)], 0.0)
    pnl = trading_pnl(pos, y, prev, cost_bps)
    count = np.bincount(codes, minlength=n_sessions).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(codes, pnl, n_sessions) / count
        turn = np.bincount(codes, np.abs(pos - prev), n_sessions) / count
    return mean, turn


def time_split(
    codes: np.ndarray, n_sessions: int, val_frac: float, embargo: int
) -> tuple[np.ndarray, np.ndarray]:
    """Masks (train, validation) by session order: the last ⌈val_frac·n⌉ sessions validate and
    the `embargo` sessions before them are dropped so no training label overlaps them."""
    n_val = int(np.ceil(val_frac * n_sessions))
    n_train = n_sessions - n_val - embargo
    if n_val < 2 or n_train < 2:
        raise ValueError(
            f"{n_sessions} sessions are too few for val_frac={val_frac}, embargo={embargo}: "
            "expected at least 2 training and 2 validation sessions"
        )
    return codes < n_train, codes >= n_sessions - n_val
