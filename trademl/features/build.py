"""Build point-in-time features from long-format bars with polars (and numpy for the grid).

The (symbol × session) grid is laid out symbol-major, one block of sessions per symbol,
so time-series expressions run per symbol and the per-session views are plain reshapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from trademl.features.registry import REGISTRY, feature_names

BAR_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
_BLOCK_ROWS = 2_000_000  # grid rows per block of symbols in the time-series pass


def _day_numbers(dates: pl.Series | Sequence[dt.date]) -> np.ndarray:
    s = dates if isinstance(dates, pl.Series) else pl.Series(list(dates), dtype=pl.Date)
    return s.cast(pl.Int32).to_numpy()


def _grid(bars: pl.DataFrame, sessions: Sequence[dt.date]) -> tuple[pl.DataFrame, list[str]]:
    """Every (symbol, session) pair in range, symbol-major, with the bar where there is one.

    The `symbol` column holds integer codes into the returned (sorted) symbol list.
    """
    days = _day_numbers(sessions)
    n_t = len(days)
    bar_days = _day_numbers(bars.get_column("date"))
    si = np.searchsorted(days, bar_days)
    on_grid = (si < n_t) & (days[np.minimum(si, n_t - 1)] == bar_days)
    bars = bars.filter(pl.Series(on_grid))
    si = si[on_grid]
    symbols = bars.get_column("symbol").unique().sort()
    codes = symbols.search_sorted(bars.get_column("symbol")).to_numpy()
    n_s = symbols.len()
    pos = codes.astype(np.int64) * n_t + si
    counts = np.bincount(pos, minlength=n_s * n_t)
    if counts.max(initial=0) > 1:
        dup = int(np.argmax(counts > 1))
        raise ValueError(
            f"bars hold duplicate (date, symbol) rows, e.g. {sessions[dup % n_t]} "
            f"{symbols[dup // n_t]} ×{counts[dup]}: features need one bar per symbol and session"
        )
    has_bar = counts.astype(bool)
    cols: dict[str, object] = {
        "symbol": np.repeat(np.arange(n_s, dtype=np.uint32), n_t),
        "date": pl.Series(np.tile(days, n_s), dtype=pl.Int32).cast(pl.Date),
        "has_bar": has_bar,
    }
    for name in ("open", "close", "volume"):
        values = np.full(n_s * n_t, np.nan)
        values[pos] = bars.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
        cols[name] = pl.Series(values).fill_nan(None)
    return pl.DataFrame(cols), symbols.to_list()


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
    frame = (
        lf.select("date", "symbol", "open", "close", "volume")
        .filter(pl.col("date").is_between(lo, hi))
        .collect()
    )
    names = feature_names(list(cross_sectional))
    grid, symbols = _grid(frame, sessions)
    del frame
    n_t, n_s = len(sessions), len(symbols)
    prev = pl.col("close_ff").shift(1).over("symbol")
    base = grid.with_columns(
        pl.col("close").forward_fill(limit=ffill_limit).over("symbol").alias("close_ff")
    ).with_columns(
        pl.when("has_bar").then((pl.col("close_ff") / prev).log()).alias("ret_1"),
        pl.when("has_bar").then((pl.col("open") / prev).log()).alias("gap"),
        (pl.col("close") * pl.col("volume")).alias("dollar_volume"),
    )
    base = base.with_columns(_market_return(base.get_column("ret_1"), n_t)).drop("open")
    del grid
    day_numbers = _day_numbers(sessions)
    wanted = np.zeros(n_t, dtype=bool)
    if out_sessions is None:
        wanted[:] = True
    else:
        wanted[np.isin(day_numbers, _day_numbers(out_sessions))] = True
    # time-series features one block of symbols at a time: they never mix symbols, and the
    # blocks bound peak memory on large universes
    block = max(1, _BLOCK_ROWS // n_t)
    parts = []
    for c0 in range(0, n_s, block):
        c1 = min(n_s, c0 + block)
        keep = base.get_column("has_bar").to_numpy()[c0 * n_t : c1 * n_t] & np.tile(wanted, c1 - c0)
        part = (
            base.slice(c0 * n_t, (c1 - c0) * n_t)
            .lazy()
            .with_columns(
                [f.expr().cast(pl.Float64).fill_nan(None).alias(f.name) for f in REGISTRY]
            )
            .select("symbol", "date", *[f.name for f in REGISTRY])
            .collect()
            .filter(pl.Series(keep))
        )
        parts.append(part)
    del base
    rows = pl.concat(parts, rechunk=False).sort("date", "symbol")
    del parts
    xs: list[pl.Expr] = []
    for name in cross_sectional:
        col = pl.col(name).fill_nan(None)
        rank = (col.rank("average") / col.count()).over("date")
        xs.append(rank.cast(pl.Float64).fill_nan(None).alias(f"xs_rank_{name}"))
        z = ((col - col.mean()) / col.std()).over("date")
        xs.append(z.cast(pl.Float64).fill_nan(None).alias(f"xs_z_{name}"))
    # a few window expressions at a time: each keeps per-session group state for every row
    for i in range(0, len(xs), 4):
        rows = rows.lazy().with_columns(xs[i : i + 4]).collect()
    out = rows
    del rows
    return out.select(
        "date",
        pl.Series("symbol", symbols, dtype=pl.String).gather(out.get_column("symbol")),
        *names,
    )
