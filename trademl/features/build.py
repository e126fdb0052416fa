"""Build point-in-time features from long-format bars with polars (and numpy for the grid).

The (symbol × session) grid is laid out symbol-major, one block of sessions per symbol:
each distinct per-symbol window of the registry runs once, all under one `over("symbol")`,
lags are flat shifts, and session-scope features run once per session. Output rows go
straight into session-major order, where `xs` ranks and z-scores every session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from trademl.features.registry import REGISTRY, WINDOW_PREFIX, feature_names, hoisted_windows
from trademl.features.xs import CrossSection, SessionRows

BAR_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
_BLOCK_ROWS = 2_000_000  # grid rows per block of symbols in the time-series pass


def _day_numbers(dates: pl.Series | Sequence[dt.date]) -> np.ndarray:
    s = dates if isinstance(dates, pl.Series) else pl.Series(list(dates), dtype=pl.Date)
    return s.cast(pl.Int32).to_numpy()


def _session_index(days: np.ndarray, bar_days: np.ndarray) -> np.ndarray:
    """Each bar's index in the session grid, −1 where its date is not a session in range."""
    lut = np.full(int(days[-1]) - int(days[0]) + 2, -1, dtype=np.int64)
    lut[days - days[0]] = np.arange(days.size)
    off = bar_days.astype(np.int64)
    off -= int(days[0])
    np.clip(off, -1, lut.size - 1, out=off)  # out of range → the last slot or −1: both −1
    return lut.take(off)


def _grid(
    bars: pl.DataFrame, sessions: Sequence[dt.date], pool: ThreadPoolExecutor
) -> tuple[pl.DataFrame, list[str]]:
    """Every (symbol, session) pair in range, symbol-major, with the bar where there is one.

    The `symbol` column holds integer codes into the returned (sorted) symbol list and `t`
    the session index.
    """
    days = _day_numbers(sessions)
    n_t = len(days)
    si = _session_index(days, _day_numbers(bars.get_column("date")))
    on_grid = si >= 0
    if not on_grid.all():
        bars = bars.filter(pl.Series(on_grid))
        si = si[on_grid]
    symbols = bars.get_column("symbol").unique().sort()
    codes = bars.get_column("symbol").cast(pl.Enum(symbols)).to_physical().to_numpy()
    n_s = symbols.len()
    pos = codes.astype(np.int64) * n_t + si
    has_bar = np.zeros(n_s * n_t, dtype=bool)
    has_bar[pos] = True
    if np.count_nonzero(has_bar) < pos.size:
        counts = np.bincount(pos, minlength=n_s * n_t)
        dup = int(np.argmax(counts > 1))
        raise ValueError(
            f"bars hold duplicate (date, symbol) rows, e.g. {sessions[dup % n_t]} "
            f"{symbols[dup // n_t]} ×{counts[dup]}: features need one bar per symbol and session"
        )
    cols: dict[str, object] = {
        "symbol": pl.Series(np.repeat(np.arange(n_s, dtype=np.uint32), n_t)).set_sorted(),
        "date": pl.Series(np.tile(days, n_s), dtype=pl.Int32).cast(pl.Date),
        "t": np.tile(np.arange(n_t, dtype=np.int32), n_s),
        "has_bar": has_bar,
    }

    def place(name: str) -> pl.Series:
        values = np.full(n_s * n_t, np.nan)
        values[pos] = bars.get_column(name).cast(pl.Float64).to_numpy()
        return pl.Series(name, values, nan_to_null=True)

    names = ("open", "close", "volume")
    cols |= dict(zip(names, pool.map(place, names), strict=True))
    return pl.DataFrame(cols), symbols.to_list()


def _market_return(ret_1: pl.Series, n_sessions: int) -> np.ndarray:
    """Equal-weight mean return per session (NaN where no name has one).

    Computed in numpy on the [symbol, session] matrix: polars' per-group mean over a
    symbol-sorted frame may add a session's values in a thread-dependent order, and
    features must be bit-identical run to run.
    """
    if ret_1.len() % n_sessions:
        raise ValueError(f"grid of {ret_1.len()} rows is not symbols × {n_sessions} sessions")
    r = ret_1.to_numpy(allow_copy=True).astype(np.float64, copy=False).reshape(-1, n_sessions)
    valid = ~np.isnan(r)
    count = valid.sum(axis=0)
    total = np.where(valid, r, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _base(grid: pl.DataFrame, ffill_limit: int, n_t: int) -> tuple[pl.DataFrame, np.ndarray]:
    """The grid plus the forward-filled close, returns, gaps, dollar volume and market return.

    Also returns the market return per session (NaN where no name has a return).
    """
    prev = pl.when(pl.col("t") >= 1).then(pl.col("close_ff").shift(1))
    base = grid.with_columns(
        pl.col("close").forward_fill(limit=ffill_limit).over("symbol").alias("close_ff")
    ).with_columns(
        pl.when("has_bar").then((pl.col("close_ff") / prev).log()).alias("ret_1"),
        pl.when("has_bar").then((pl.col("open") / prev).log()).alias("gap"),
        (pl.col("close") * pl.col("volume")).alias("dollar_volume"),
    )
    mkt = _market_return(base.get_column("ret_1"), n_t)
    n_s = base.height // n_t
    mkt_col = pl.Series("mkt_ret", np.tile(mkt, n_s), nan_to_null=True)
    return base.with_columns(mkt_col).drop("open"), mkt


def _session_rows(keep: np.ndarray) -> tuple[SessionRows, np.ndarray]:
    """Output rows in (session, symbol) order from the [symbol, session] keep mask.

    Returns the rows (compact session index, symbol) and each row's grid session index.
    """
    n_s, n_t = keep.shape
    sess, sym = np.nonzero(keep.T)
    used = np.flatnonzero(keep.any(axis=0))
    compact = np.zeros(n_t, dtype=np.int64)
    compact[used] = np.arange(used.size)
    session = compact[sess]
    per_session = keep.sum(axis=0)[used]
    return SessionRows(session, sym, session * n_s + sym, per_session, used.size, n_s), sess


def _as_float(name: str, expr: pl.Expr) -> pl.Expr:
    """The expression as float64 with NaN for null, so that `to_numpy` is a plain view."""
    return expr.cast(pl.Float64).fill_null(np.nan).alias(name)


def _gather(
    part: pl.DataFrame, names: list[str], src: np.ndarray, pool: ThreadPoolExecutor
) -> list[np.ndarray]:
    """Null-free float columns of `part` at rows `src`, as numpy arrays (one per thread)."""
    return list(pool.map(lambda n: part.get_column(n).to_numpy().take(src), names))


def _time_series(
    base: pl.DataFrame, rows: SessionRows, sess: np.ndarray, pool: ThreadPoolExecutor
) -> dict[str, np.ndarray]:
    """Symbol-scope registry features at the output rows, in output order (NaN where null).

    One block of symbols at a time: the expressions never mix symbols, and the blocks
    bound peak memory on large universes.
    """
    feats = [f.name for f in REGISTRY if f.scope == "symbol"]
    with hoisted_windows() as windows:
        exprs = [_as_float(f.name, f.expr()) for f in REGISTRY if f.scope == "symbol"]
    # every distinct per-symbol window once, in one group-by pass over the symbols
    fields = [w.alias(f"{WINDOW_PREFIX}{i}") for i, w in enumerate(windows)]
    n_s, n_out = rows.n_symbols, sess.size
    if n_s == 0:
        return {name: np.empty(0) for name in feats}
    n_t = base.height // n_s
    block = max(1, _BLOCK_ROWS // max(n_t, 1))
    if block >= n_s:
        part = _evaluate(base, fields, exprs)
        return dict(zip(feats, _gather(part, feats, rows.symbol * n_t + sess, pool), strict=True))
    out = {name: np.empty(n_out) for name in feats}
    for c0 in range(0, n_s, block):
        c1 = min(n_s, c0 + block)
        part = _evaluate(base.slice(c0 * n_t, (c1 - c0) * n_t), fields, exprs)
        dest = np.flatnonzero((rows.symbol >= c0) & (rows.symbol < c1))
        src = (rows.symbol[dest] - c0) * n_t + sess[dest]
        for name, values in zip(feats, _gather(part, feats, src, pool), strict=True):
            out[name][dest] = values
        del part
    return out


def _evaluate(part: pl.DataFrame, fields: list[pl.Expr], exprs: list[pl.Expr]) -> pl.DataFrame:
    """The hoisted per-symbol windows, then the feature expressions, on a block of symbols.

    Eager frames: polars runs them in memory (a lazy collect may pick its streaming
    engine, much slower for window expressions).
    """
    if fields:
        part = part.with_columns(pl.struct(fields).over("symbol").alias("_w")).unnest("_w")
    return part.select(exprs)


def _per_session(
    sessions: Sequence[dt.date], mkt: np.ndarray, session: np.ndarray
) -> dict[str, np.ndarray]:
    """Session-scope registry features, evaluated once per session and broadcast to rows."""
    feats = [f for f in REGISTRY if f.scope == "session"]
    frame = pl.DataFrame(
        {
            "date": pl.Series(list(sessions), dtype=pl.Date),
            "t": np.arange(len(sessions), dtype=np.int32),
            "mkt_ret": pl.Series(mkt).fill_nan(None),
        }
    )
    ev = frame.select([_as_float(f.name, f.expr()) for f in feats])
    return {f.name: ev.get_column(f.name).to_numpy()[session] for f in feats}


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
    names = feature_names(list(cross_sectional))  # fails early on an unknown name
    # numpy steps (gathers, scatters, cross-sectional ranks) release the GIL: run them on
    # as many threads as polars uses
    with ThreadPoolExecutor(max(1, pl.thread_pool_size())) as pool:
        return _build(lf, sessions, list(cross_sectional), names, ffill_limit, out_sessions, pool)


def _build(
    lf: pl.LazyFrame,
    sessions: Sequence[dt.date],
    cross_sectional: list[str],
    names: list[str],
    ffill_limit: int,
    out_sessions: Sequence[dt.date] | None,
    pool: ThreadPoolExecutor,
) -> pl.DataFrame:
    """`build_features` once its arguments are checked: grid, time series, cross-sections."""
    frame = (
        lf.select("date", "symbol", "open", "close", "volume")
        .filter(pl.col("date").is_between(sessions[0], sessions[-1]))
        .collect()
    )
    grid, symbols = _grid(frame, sessions, pool)
    del frame
    n_t, n_s = len(sessions), len(symbols)
    base, mkt = _base(grid, ffill_limit, n_t)
    del grid
    day_numbers = _day_numbers(sessions)
    wanted = np.ones(n_t, dtype=bool)
    if out_sessions is not None:
        wanted = np.isin(day_numbers, _day_numbers(out_sessions))
    keep = base.get_column("has_bar").to_numpy().reshape(n_s, n_t) & wanted[None, :]
    rows, sess = _session_rows(keep)
    del keep
    values = _time_series(base, rows, sess, pool)
    del base
    values |= _per_session(sessions, mkt, sess)
    # null-aware output columns share the numpy buffers
    cols = {n: pl.Series(n, v, nan_to_null=True) for n, v in values.items()}
    xs = CrossSection(cross_sectional, values, cols, rows, pool)  # starts in the background
    values.clear()
    cols["date"] = pl.Series(day_numbers[sess], dtype=pl.Int32).cast(pl.Date)
    cols["symbol"] = pl.Series(symbols, dtype=pl.String).gather(rows.symbol)
    cols |= xs.finish()
    return pl.DataFrame({"date": cols["date"], "symbol": cols["symbol"]}).with_columns(
        [cols[n].alias(n) for n in names]
    )
