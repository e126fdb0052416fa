"""Side-by-side records of the served book and the shadow books (challengers on paper), each
replayed by the same trailing backtest with the same costs from its first session on."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from trademl.backtest.engine import BacktestParams
from trademl.backtest.trailing import trailing_backtest
from trademl.costs import CostModel

__all__ = ["SHADOW_SCHEMA", "book_summaries", "book_summary"]

SHADOW_SCHEMA = {
    "date": pl.Date,
    "book": pl.String,
    "role": pl.String,
    "kind": pl.String,
    "sleeve": pl.String,
    "version": pl.String,
    "first_session": pl.Date,
    "sessions": pl.Int64,
    "net_return": pl.Float64,
    "sharpe": pl.Float64,
    "turnover": pl.Float64,
    "rank_ic": pl.Float64,
}


def book_summary(
    weights: pl.DataFrame,
    bars: pl.DataFrame,
    session: dt.date,
    *,
    window: int,
    params: BacktestParams,
    costs: CostModel,
) -> dict[str, float | int | dt.date | None]:
    """One book's record as of `session`: its decision sessions ≤ `session` within the last
    `window` bar sessions, replayed from its first one (NaN metrics with no session)."""
    dates = sorted(d for d in bars.get_column("date").unique().to_list() if d <= session)[-window:]
    w = weights.filter(pl.col("date").is_between(dates[0], session)) if dates else weights.clear()
    if w.height == 0:
        nan = math.nan
        return {
            "first_session": None,
            "sessions": 0,
            "net_return": nan,
            "sharpe": nan,
            "turnover": nan,
            "rank_ic": nan,
        }
    first = w.get_column("date").min()
    span = [d for d in dates if d >= first]
    bt = trailing_backtest(
        w.select("date", "symbol", "weight", "score"),
        bars,
        w.select("date", "symbol", "sigma", "adv"),
        span,
        params=params,
        costs=costs,
    )
    m = bt.metrics
    return {
        "first_session": first,
        "sessions": int(w.get_column("date").n_unique()),
        "net_return": float(bt.frame.get_column("equity")[-1] - 1.0),
        "sharpe": float(m.get("sharpe", math.nan)),
        "turnover": float(m.get("avg_turnover", math.nan)),
        "rank_ic": float(m.get("rank_ic_mean", math.nan)),
    }


def book_summaries(
    served: pl.DataFrame,
    shadows: pl.DataFrame,
    bars: pl.DataFrame,
    session: dt.date,
    *,
    window: int,
    params: BacktestParams,
    costs: CostModel,
) -> pl.DataFrame:
    """The served book (role ``served``) and each shadow book (role ``challenger``, keyed by
    `book`) as of `session`, one row each, in SHADOW_SCHEMA."""
    rows = [
        {
            "date": session,
            "book": "served",
            "role": "served",
            "kind": "served",
            "sleeve": None,
            "version": None,
            **book_summary(served, bars, session, window=window, params=params, costs=costs),
        }
    ]
    if shadows.height:
        live = shadows.filter(pl.col("date") <= session)
        for (book,), w in sorted(live.partition_by("book", as_dict=True).items()):
            first = w.row(0, named=True)
            rows.append(
                {
                    "date": session,
                    "book": book,
                    "role": "challenger",
                    "kind": first["kind"],
                    "sleeve": first["sleeve"],
                    "version": first["version"],
                    **book_summary(w, bars, session, window=window, params=params, costs=costs),
                }
            )
    return pl.DataFrame(rows, schema=SHADOW_SCHEMA)
