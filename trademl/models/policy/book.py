"""The sizing policy applied to the book, per name: its states, the return it is rewarded
with, and the gate's evaluation through the same backtest the reports use.

A row per (session, name the book holds): the state [y_hat, vol, trend] is the alpha score
z-scored within the session, the name's daily σ and its trend feature — all known at the
session's close — and `exposure` is the target weight, so a size s holds s × weight. The
reward of a row is that position's share of the book's next-session net return: y is the
name's return from the execution price one session after the decision to the next one
(known `lag + 1` sessions after it), minus the cost of the change. The served book applies
the sizes and then the portfolio caps again (name cap, balanced legs, gross cap), so sizing
can never break them; the gate replays sized and unsized books through the backtest engine
with the platform's cost model on sessions after the policy's training window.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from trademl.backtest.engine import BacktestParams
from trademl.backtest.trailing import trailing_backtest
from trademl.costs import CostModel
from trademl.models.stacker.normalize import zscore_columns
from trademl.portfolio.weights import PortfolioParams, enforce_caps
from trademl.validation.metrics import sharpe

__all__ = ["STATE", "apply_sizes", "book_frame", "book_states", "evaluate_sizing"]

STATE = ("y_hat", "vol", "trend")


def book_states(
    weights: pl.DataFrame,
    features: pl.DataFrame,
    *,
    trend_feature: str,
    liquidity_feature: str | None = None,
) -> pl.DataFrame:
    """(session, symbol, y_hat, vol, trend, exposure) for every held name of `weights`
    (date, symbol, weight, score, sigma); `features` supplies the trend column and, when
    `liquidity_feature` is given, the name's dollar ADV as ``adv``."""
    for what, col in (("trend_feature", trend_feature), ("liquidity", liquidity_feature)):
        if col is not None and col not in features.columns:
            raise ValueError(
                f"{what} {col!r} is not a column of the features given; pick one of the "
                f"features table's columns (e.g. mom_20, dollar_vol_20)"
            )
    held = weights.filter(pl.col("weight") != 0).select(
        "date", "symbol", "score", "sigma", pl.col("weight").alias("exposure")
    )
    extra = [pl.col(liquidity_feature).cast(pl.Float64).alias("adv")] if liquidity_feature else []
    trend = features.select("date", "symbol", pl.col(trend_feature).alias("trend"), *extra)
    out = zscore_columns(held, ["score"]).join(trend, on=["date", "symbol"], how="left")
    return out.select(
        pl.col("date").alias("session"),
        "symbol",
        pl.col("score").alias("y_hat"),
        pl.col("sigma").cast(pl.Float64).alias("vol"),
        pl.col("trend").cast(pl.Float64),
        pl.col("exposure").cast(pl.Float64),
        *(["adv"] if liquidity_feature else []),
    ).sort("session", "symbol")


def next_returns(bars: pl.DataFrame, *, price: str, lag: int) -> pl.DataFrame:
    """(session, symbol, y, known): the return a decision at `session` earns, from the
    execution price `lag` sessions later to the next session's, and the session it is known."""
    grid = bars.select("date").unique().sort("date").with_row_index("i")
    px = bars.select("date", "symbol", pl.col(price).alias("px")).join(grid, on="date")
    rows = px.sort("symbol", "i").with_columns(
        (
            pl.col("px").shift(-(lag + 1)).over("symbol") / pl.col("px").shift(-lag).over("symbol")
            - 1.0
        ).alias("y"),
        pl.col("i").shift(-(lag + 1)).over("symbol").alias("i_known"),
        pl.col("i").shift(-lag).over("symbol").alias("i_fill"),
    )
    # both prices on consecutive sessions of the grid: a missing bar is no return, not a gap's
    rows = rows.filter(
        (pl.col("i_fill") == pl.col("i") + lag) & (pl.col("i_known") == pl.col("i") + lag + 1)
    )
    known = grid.select(pl.col("i").alias("i_known"), pl.col("date").alias("known"))
    return rows.join(known, on="i_known").select(
        pl.col("date").alias("session"), "symbol", "y", "known"
    )


def book_frame(
    weights: pl.DataFrame,
    features: pl.DataFrame,
    bars: pl.DataFrame,
    *,
    trend_feature: str,
    price: str,
    lag: int,
    as_of: dt.date,
) -> pl.DataFrame:
    """`book_states` with the realized y of every row whose return was known by `as_of`."""
    states = book_states(weights, features, trend_feature=trend_feature)
    y = next_returns(bars.filter(pl.col("date") <= as_of), price=price, lag=lag)
    return states.join(
        y.filter(pl.col("known") <= as_of).drop("known"), on=["session", "symbol"], how="inner"
    ).filter(pl.col("y").is_finite())


def apply_sizes(weights: pl.DataFrame, sizes: np.ndarray, params: PortfolioParams) -> pl.DataFrame:
    """`weights` (date, symbol, weight, …) with weight = caps(size × target weight), and the
    target weight and size kept; rows are matched by position."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.shape != (weights.height,):
        raise ValueError(f"one size per weight row expected ({weights.height}), got {sizes.shape}")
    sized = weights.with_columns(
        pl.col("weight").alias("target_weight"),
        pl.Series("size", np.where(np.isfinite(sizes), sizes, 1.0)),
    )
    capped = enforce_caps(
        sized.select("date", "symbol", (pl.col("weight") * pl.col("size")).alias("w")), params
    )
    return (
        sized.drop("weight")
        .join(capped, on=["date", "symbol"], how="left")
        .select("date", "symbol", "weight", pl.exclude("date", "symbol", "weight"))
    )


def evaluate_sizing(
    size_fn: Callable[[pl.DataFrame], np.ndarray],
    weights: pl.DataFrame,
    features: pl.DataFrame,
    bars: pl.DataFrame,
    *,
    sessions: list[dt.date],
    trend_feature: str,
    portfolio: PortfolioParams,
    backtest: BacktestParams,
    costs: CostModel,
) -> dict[str, Any]:
    """Sized vs unsized book over `sessions` (after the policy's training window): net
    Sharpe of each, their total net returns, turnover, and the t-stat of the daily
    improvement. `size_fn` maps `book_states` rows to sizes."""
    w = weights.filter(pl.col("date").is_between(sessions[0], sessions[-1]))
    states = book_states(w, features, trend_feature=trend_feature)
    sizes = w.join(
        states.select(
            pl.col("session").alias("date"), "symbol", pl.Series("size", size_fn(states))
        ),
        on=["date", "symbol"],
        how="left",
    ).get_column("size")
    sized = apply_sizes(w, sizes.fill_null(1.0).to_numpy(), portfolio)
    unsized = apply_sizes(w, np.ones(w.height), portfolio)  # the same caps, size 1
    risk = w.select("date", "symbol", "sigma", "adv")
    out: dict[str, Any] = {}
    nets = {}
    for name, book in (("sized", sized), ("unsized", unsized)):
        bt = trailing_backtest(
            book.select("date", "symbol", "weight", "score"),
            bars,
            risk,
            sessions,
            params=backtest,
            costs=costs,
        )
        net = bt.frame.get_column("net_returns").to_numpy()
        nets[name] = net
        out[f"sharpe_{name}"] = sharpe(net, backtest.periods_per_year)
        out[f"return_{name}"] = float(np.prod(1.0 + net[np.isfinite(net)]) - 1.0)
        out[f"turnover_{name}"] = float(bt.metrics.get("avg_turnover", math.nan))
    d = nets["sized"] - nets["unsized"]
    d = d[np.isfinite(d)]
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    out["improvement_t"] = float(d.mean() / sd * math.sqrt(d.size)) if sd > 0 else math.nan
    out["mean_size"] = (
        float(np.nanmean(sized.get_column("size").to_numpy())) if sized.height else math.nan
    )
    out["test_sessions"] = float(len(sessions))
    return out
