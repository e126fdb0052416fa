"""Live monitoring of a sizing champion: what its sizes added to the book once returns are
known — Σ (sized − target weight) × the realized next return, per session, gross of costs."""

from __future__ import annotations

import math

import polars as pl

from trademl.models.policy.book import next_returns

__all__ = ["sizing_contribution"]


def sizing_contribution(
    sized: pl.DataFrame, bars: pl.DataFrame, *, price: str, lag: int, sizer: str
) -> tuple[float, float, int]:
    """(mean bps per session, t-stat, sessions) of the sizing's live contribution.

    Parameters
    ----------
    sized : the served book (`sized_weights`: date, symbol, weight, target_weight, sizer);
        only sessions sized by a version of `sizer` (``sizer@…``) count.
    bars : bars up to today; a session counts once its return is known (lag + 1 later).
    """
    rows = sized.filter(pl.col("sizer").str.starts_with(f"{sizer}@"))
    if rows.height == 0:
        return math.nan, math.nan, 0
    y = next_returns(bars, price=price, lag=lag).drop("known")
    per = (
        rows.join(y, left_on=["date", "symbol"], right_on=["session", "symbol"], how="inner")
        .filter(pl.col("y").is_finite())
        .group_by("date")
        .agg(((pl.col("weight") - pl.col("target_weight")) * pl.col("y")).sum().alias("c"))
        .sort("date")
    )
    c = 1e4 * per.get_column("c").to_numpy()
    n = int(c.size)
    if n < 2:
        return (float(c.mean()) if n else math.nan), math.nan, n
    sd = float(c.std(ddof=1))
    t = float(c.mean() / sd * math.sqrt(n)) if sd > 0 else math.nan
    return float(c.mean()), t, n
