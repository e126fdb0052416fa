"""The backtest a session's report shows: the trailing window of target weights replayed with
costs and borrow, an equal-weight benchmark, and the signal's realized rank IC per session.

Everything uses bars dated ≤ the window's last session, so the result as of d never changes
once d has closed: the last decisions have no fill yet and the last ICs are not yet known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from trademl.backtest.engine import BacktestParams
from trademl.backtest.frames import backtest_frames, to_matrix
from trademl.backtest.metrics import performance_metrics
from trademl.costs import CostModel
from trademl.validation.metrics import ic_by_session

__all__ = ["TrailingBacktest", "backtest_window", "trailing_backtest"]


@dataclass(frozen=True)
class TrailingBacktest:
    """Per-session series of the window and the summary metrics."""

    frame: pl.DataFrame
    metrics: dict[str, float]


def backtest_window(
    weights: pl.DataFrame, bar_dates: Sequence[dt.date], session: dt.date, n: int
) -> list[dt.date]:
    """The last `n` bar sessions ≤ `session`, from the first one that held a position.

    Sessions before any position (e.g. a fallback feature's warm-up) would count as flat
    days in Sharpe, CAGR and n_sessions; a session with no position yet gets [session].
    """
    held = weights.filter((pl.col("weight") != 0) & (pl.col("date") <= session))
    if held.height == 0:
        return [session]
    first = held.get_column("date").min()
    window = sorted(d for d in set(bar_dates) if first <= d <= session)
    return window[-n:] or [session]


def trailing_backtest(
    weights: pl.DataFrame,
    bars: pl.DataFrame,
    risk: pl.DataFrame,
    sessions: Sequence[dt.date],
    *,
    params: BacktestParams,
    costs: CostModel,
    n_trials: int = 1,
) -> TrailingBacktest:
    """Replay `weights` (date, symbol, weight[, score]) over `sessions` (sorted, the window).

    Parameters
    ----------
    bars
        (date, symbol, open, close) of the window.
    risk
        (date, symbol, sigma, adv): daily σ and ADV in shares known at each close.
    """
    sess = pl.Series("date", list(sessions), dtype=pl.Date)
    lo, hi = sess.min(), sess.max()
    window = pl.col("date").is_between(lo, hi)
    w = weights.filter(window)
    b = bars.filter(window)
    r = risk.filter(window)
    res = backtest_frames(w, b, r, params=params, costs=costs, sessions=sess)
    frame = res.to_frame()
    syms = pl.concat([b.get_column("symbol"), w.get_column("symbol")]).unique().sort()
    close = to_matrix(b, "close", sess, syms)
    with np.errstate(invalid="ignore", divide="ignore"):
        rets = close[1:] / close[:-1] - 1.0
    mkt = np.zeros(len(sess))
    if rets.size:
        finite = np.isfinite(rets)
        counts = finite.sum(axis=1)
        mkt[1:] = np.where(
            counts > 0, np.where(finite, rets, 0.0).sum(axis=1) / np.maximum(counts, 1), 0.0
        )
    frame = frame.with_columns(
        pl.Series("benchmark_equity", np.cumprod(1.0 + mkt)),
        pl.Series("rank_ic", _realized_rank_ic(w, b, sess, syms, params)),
    )
    metrics = performance_metrics(res, n_trials=n_trials, periods_per_year=params.periods_per_year)
    ic = frame.get_column("rank_ic").drop_nans().drop_nulls()
    metrics["rank_ic_mean"] = float(ic.mean()) if ic.len() else float("nan")
    metrics["benchmark_return"] = float(frame.get_column("benchmark_equity")[-1] - 1.0)
    return TrailingBacktest(frame=frame, metrics=metrics)


def _realized_rank_ic(
    weights: pl.DataFrame,
    bars: pl.DataFrame,
    sess: pl.Series,
    syms: pl.Series,
    params: BacktestParams,
) -> np.ndarray:
    """Rank IC of session s's score with the return its decision earned: execution price at
    s+lag → s+lag+1 (NaN while that return is not yet known inside the window)."""
    out = np.full(len(sess), np.nan)
    if "score" not in weights.columns or weights.height == 0:
        return out
    price = to_matrix(bars, params.price, sess, syms)
    k = params.lag
    if len(sess) <= k + 1:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd = price[k + 1 :] / price[k : len(sess) - 1] - 1.0  # row s ↔ decision at s
    score = to_matrix(weights, "score", sess, syms)[: fwd.shape[0]]
    t_idx = np.repeat(np.arange(fwd.shape[0]), fwd.shape[1])
    per: Any = ic_by_session(score.reshape(-1), fwd.reshape(-1), t_idx)
    out[per.get_column("session").to_numpy()] = per.get_column("rank_ic").to_numpy()
    return out
