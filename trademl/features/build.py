"""Build point-in-time features from long-format bars with polars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from trademl.features.registry import REGISTRY, feature_names

BAR_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")


def _grid(bars: pl.LazyFrame, sessions: Sequence[dt.date]) -> pl.LazyFrame:
    """Every (symbol, session) pair in range, with the bar where there is one."""
    cal = pl.LazyFrame({"date": pl.Series(list(sessions), dtype=pl.Date)})
    symbols = bars.select(pl.col("symbol").unique())
    return (
        symbols.join(cal, how="cross")
        .join(bars, on=["symbol", "date"], how="left")
        .with_columns(pl.col("close").is_not_null().alias("has_bar"))
        .sort("symbol", "date")
    )


def _market_return(ret_1: pl.Series, n_sessions: int) -> pl.Series:
    """Equal-weight mean return per session, broadcast back to the (symbol × session) grid.

    Computed in numpy on the [symbol, session] matrix: polars' per-group mean over a
    symbol-sorted frame may add a session's values in a thread-dependent order, and
    features must be bit-identical run to run.
    """
    if ret_1.len() % n_sessions:
        raise ValueError(f"grid of {ret_1.len()} rows is not symbols × {n_sessions} sessions")
    r = ret_1.to_numpy(allow_copy=True).astype(np.float64).reshape(-1, n_sessions)
    valid = ~np.isnan(r)
    count = valid.sum(axis=0)
    total = np.where(valid, r, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mkt = np.where(count > 0, total / count, np.nan)
    return pl.Series("mkt_ret", np.tile(mkt, r.shape[0])).fill_nan(None)


def build_features(
    bars: pl.DataFrame | pl.LazyFrame,
    sessions: Sequence[dt.date],
    *,
    cross_sectional: Sequence[str],
    ffill_limit: int = 5,
    out_sessions: Sequence[dt.date] | None = None,
) -> pl.DataFrame:
    """Features for every bar dated in `out_sessions` (default: all `sessions`).

    Parameters
    ----------
    bars:
        Long-format bars; rows outside [sessions[0], sessions[-1]] are ignored.
    sessions:
        The exchange session grid, sorted; windows count sessions, not rows.
    cross_sectional:
        Base features that also get per-session ranks (`xs_rank_*`) and z-scores (`xs_z_*`).
    ffill_limit:
        How many sessions a last close may stand in for missing bars (inside
        computations only; rows are emitted only where a bar exists).
    """
    if not sessions:
        raise ValueError("build_features needs at least one session")
    lf = bars.lazy() if isinstance(bars, pl.DataFrame) else bars
    missing = [c for c in BAR_COLUMNS if c not in lf.collect_schema().names()]
    if missing:
        raise ValueError(f"bars lack columns {missing}; expected {list(BAR_COLUMNS)}")
    lo, hi = sessions[0], sessions[-1]
    lf = lf.select(BAR_COLUMNS).filter(pl.col("date").is_between(lo, hi))
    dups = lf.group_by("date", "symbol").len().filter(pl.col("len") > 1).head(5).collect()
    if dups.height:
        first = dups.row(0, named=True)
        raise ValueError(
            f"bars hold duplicate (date, symbol) rows, e.g. {first['date']} {first['symbol']} "
            f"×{first['len']}: features need one bar per symbol and session"
        )
    wanted = list(out_sessions) if out_sessions is not None else list(sessions)
    names = feature_names(list(cross_sectional))
    prev = pl.col("close_ff").shift(1).over("symbol")
    base = (
        _grid(lf, sessions)
        .with_columns(
            pl.col("close").forward_fill(limit=ffill_limit).over("symbol").alias("close_ff")
        )
        .with_columns(
            pl.when("has_bar").then((pl.col("close_ff") / prev).log()).alias("ret_1"),
            pl.when("has_bar").then((pl.col("open") / prev).log()).alias("gap"),
            (pl.col("close") * pl.col("volume")).alias("dollar_volume"),
        )
        .collect()
    )
    frame = (
        base.with_columns(_market_return(base.get_column("ret_1"), len(sessions)))
        .lazy()
        .with_columns([f.expr().alias(f.name) for f in REGISTRY])
        .filter(pl.col("has_bar") & pl.col("date").is_in(pl.Series(wanted, dtype=pl.Date)))
        .sort("date", "symbol")
    )
    xs: list[pl.Expr] = []
    for name in cross_sectional:
        col = pl.col(name).fill_nan(None)
        xs.append((col.rank("average") / col.count()).over("date").alias(f"xs_rank_{name}"))
    for name in cross_sectional:
        col = pl.col(name).fill_nan(None)
        xs.append(((col - col.mean()) / col.std()).over("date").alias(f"xs_z_{name}"))
    out = (
        frame.with_columns(xs)
        .select(["date", "symbol", *[pl.col(n).cast(pl.Float64) for n in names]])
        .collect()
    )
    return out.with_columns([pl.col(n).fill_nan(None) for n in names])
