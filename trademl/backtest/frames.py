"""Long polars frames ↔ the session-major (sessions × symbols) matrices the engine takes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trademl.backtest.engine import BacktestParams, BacktestResult, run_backtest
from trademl.costs import CostModel

__all__ = ["Panel", "backtest_frames", "build_panel", "to_matrix"]


def to_matrix(
    frame: pl.DataFrame,
    value: str,
    sessions: pl.Series | Sequence[dt.date],
    symbols: pl.Series | Sequence[str],
) -> np.ndarray:
    """Pivot long (date, symbol, value) onto a float64 [len(sessions), len(symbols)] matrix.

    Cells without a row are NaN. Raises ValueError naming the offending value when the frame
    lacks a column, holds a date not in `sessions` or a symbol not in `symbols`, or repeats
    a (date, symbol).
    """
    missing = [c for c in ("date", "symbol", value) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing} for matrix {value!r}")
    sess = pl.DataFrame({"date": pl.Series(sessions).cast(pl.Date)}).with_row_index("_t")
    syms = pl.DataFrame({"symbol": pl.Series(symbols).cast(pl.String)}).with_row_index("_j")
    df = (
        frame.select(
            pl.col("date").cast(pl.Date),
            pl.col("symbol").cast(pl.String),
            pl.col(value).cast(pl.Float64),
        )
        .join(sess, on="date", how="left")
        .join(syms, on="symbol", how="left")
    )
    for key, idx, what in (("date", "_t", "sessions"), ("symbol", "_j", "symbols")):
        bad = df.filter(pl.col(idx).is_null())
        if bad.height:
            raise ValueError(f"{value!r} frame has {key} {bad[key][0]!r} not in the {what}")
    dup = df.filter(pl.struct("_t", "_j").is_duplicated())
    if dup.height:
        raise ValueError(
            f"{value!r} frame repeats (date, symbol) at session {dup['date'][0]} "
            f"symbol {dup['symbol'][0]!r}"
        )
    out = np.full((sess.height, syms.height), np.nan)
    out[df["_t"].to_numpy(), df["_j"].to_numpy()] = df[value].fill_null(np.nan).to_numpy()
    return out


@dataclass(frozen=True)
class Panel:
    """Engine inputs on one (session × symbol) grid, with its labels."""

    sessions: pl.Series
    symbols: pl.Series
    weights: np.ndarray
    open: np.ndarray
    close: np.ndarray
    adv: np.ndarray
    sigma: np.ndarray


def build_panel(
    weights: pl.DataFrame,
    bars: pl.DataFrame,
    risk: pl.DataFrame,
    *,
    sessions: pl.Series | Sequence[dt.date] | None = None,
) -> Panel:
    """Align weights (date, symbol, weight), bars (date, symbol, open, close) and risk
    (date, symbol, adv, sigma) — adv in shares, sigma daily — on one grid.

    Sessions default to the sorted unique bar dates; symbols are the sorted union of bar and
    weight symbols (a weighted name without bars never trades).
    """
    sess = (
        pl.Series("date", sessions).cast(pl.Date)
        if sessions is not None
        else bars.get_column("date").cast(pl.Date).unique().sort()
    )
    syms = (
        pl.concat([bars.get_column("symbol"), weights.get_column("symbol")])
        .cast(pl.String)
        .unique()
        .sort()
    )
    return Panel(
        sessions=sess,
        symbols=syms,
        weights=to_matrix(weights, "weight", sess, syms),
        open=to_matrix(bars, "open", sess, syms),
        close=to_matrix(bars, "close", sess, syms),
        adv=to_matrix(risk, "adv", sess, syms),
        sigma=to_matrix(risk, "sigma", sess, syms),
    )


def backtest_frames(
    weights: pl.DataFrame,
    bars: pl.DataFrame,
    risk: pl.DataFrame,
    *,
    params: BacktestParams | None = None,
    costs: CostModel | None = None,
    sessions: pl.Series | Sequence[dt.date] | None = None,
) -> BacktestResult:
    """`build_panel` then `run_backtest`; the result carries the session dates."""
    p = build_panel(weights, bars, risk, sessions=sessions)
    return run_backtest(
        p.weights,
        p.open,
        p.close,
        p.adv,
        p.sigma,
        params=params,
        costs=costs,
        sessions=p.sessions,
        symbols=p.symbols,
    )
