"""Point-in-time return series for the forecasters: validation, the session grid, targets,
context signals (vol, trend) and the long frames NeuralForecast reads.

Definitions (every value is known at its own session):

- sessions are the sorted union of the bars' dates and `ds` is a session's ordinal in that
  list (integer time, freq=1: consecutive sessions, so holidays never make a gap);
- `r_s = open_s / open_{s-1} - 1`, the one-session open-to-open return, known at s's open;
  it is null unless the symbol has a bar at both s and the previous session, so a missing
  bar leaves a masked gap (NeuralForecast's `available_mask` = 0, y = 0 as a masked filler value)
  and never a fabricated or forward-filled return;
- the target of session d is `r_{d+h}` with h = lag + 1 (decide at d's close, trade at
  the open lag sessions later, earn the next open-to-open return);
- vol at d = sample std (ddof=1) of the r's in the last `vol_window` sessions ≤ d (at
  least half of them present), trend at d = their mean over the last `trend_window`
  sessions ≤ d (average daily drift; at least half present);
- n_obs at d = number of known r's in the models' input window (last input_size ≤ d);
- features at (date, symbol) are taken as known at that session's close; nulls and
  non-finite values become 0 in the model input.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

__all__ = [
    "BAR_COLUMNS",
    "add_context",
    "attach_features",
    "prediction_frame",
    "realized_target",
    "returns_panel",
    "training_frame",
    "validate_bars",
    "validate_features",
]

BAR_COLUMNS = ("date", "symbol", "open")
_KEYS = ("date", "symbol")
_RESERVED = frozenset(
    {"ds", "r", "y", "has_bar", "open", "vol", "trend", "n_obs", "unique_id", "available_mask"}
)


def _as_frame(df: pl.DataFrame | pl.LazyFrame, what: str) -> pl.DataFrame:
    if isinstance(df, pl.LazyFrame):
        return df.collect()
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"{what}: expected a polars DataFrame, got {type(df).__name__}")
    return df


def _check_keys(df: pl.DataFrame, what: str) -> pl.DataFrame:
    """Date column as pl.Date, no null keys, no duplicate (date, symbol)."""
    dtype = df.schema["date"]
    if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
        df = df.with_columns(pl.col("date").dt.date())
    elif dtype != pl.Date:
        raise ValueError(f"{what}: column 'date' has dtype {dtype}, expected Date or Datetime")
    for key in _KEYS:
        if df[key].null_count():
            raise ValueError(f"{what}: column {key!r} has {df[key].null_count()} null value(s)")
    dup = df.group_by(_KEYS).len().filter(pl.col("len") > 1).sort(_KEYS)
    if dup.height:
        d, s, n = dup.row(0)
        raise ValueError(
            f"{what}: duplicate (date, symbol) rows, e.g. session {d} symbol {s!r} "
            f"({n} rows; {dup.height} duplicated pair(s) in all)"
        )
    return df


def validate_bars(bars: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Check long bars and return (date, symbol, open) sorted by (symbol, date).

    Raises ValueError naming a missing column, a duplicate (session, symbol) or a
    non-positive/non-finite open. A null open counts as a missing bar.
    """
    df = _as_frame(bars, "bars")
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"bars: missing column(s) {missing}; expected at least {BAR_COLUMNS}")
    df = _check_keys(df.select(BAR_COLUMNS), "bars")
    try:
        df = df.with_columns(pl.col("open").cast(pl.Float64), pl.col("symbol").cast(pl.String))
    except pl.exceptions.InvalidOperationError as exc:
        raise ValueError(f"bars: column 'open' is not numeric ({df.schema['open']})") from exc
    bad = df.filter(
        pl.col("open").is_not_null() & ~(pl.col("open").is_finite() & (pl.col("open") > 0))
    )
    if bad.height:
        d, s, o = bad.sort(_KEYS).row(0)
        raise ValueError(f"bars: column 'open' must be positive and finite; session {d} {s!r}: {o}")
    if df.height == 0:
        raise ValueError("bars: no rows")
    return df.sort("symbol", "date")


def validate_features(
    features: pl.DataFrame | pl.LazyFrame,
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Check a long features frame (date, symbol, <numeric feature columns>)."""
    df = _as_frame(features, "features")
    missing = [c for c in _KEYS if c not in df.columns]
    if missing:
        raise ValueError(
            f"features: missing column(s) {missing}; expected date, symbol, <features>"
        )
    names = tuple(c for c in df.columns if c not in _KEYS)
    if not names:
        raise ValueError("features: no feature columns besides date, symbol")
    clash = sorted(set(names) & _RESERVED)
    if clash:
        raise ValueError(f"features: column name(s) {clash} are reserved; rename them")
    bad = [c for c in names if not df.schema[c].is_numeric()]
    if bad:
        raise ValueError(f"features: non-numeric feature column(s) {bad}")
    df = _check_keys(df, "features").with_columns(pl.col("symbol").cast(pl.String))
    return df.with_columns(pl.col(list(names)).cast(pl.Float64)), names


def returns_panel(bars: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Dense (symbol × session) grid with open-to-open returns.

    One row per symbol for every session from its first bar to the last session in
    `bars`: date, ds (session ordinal), symbol, has_bar, r (null where a bar is missing
    at the session or the one before). Sorted by (symbol, ds).
    """
    b = validate_bars(bars)
    sessions = b["date"].unique().sort()
    cal = pl.DataFrame({"date": sessions, "ds": pl.int_range(sessions.len(), eager=True)})
    b = b.join(cal, on="date", how="left")
    first = b.group_by("symbol").agg(pl.col("ds").min().alias("_first"))
    grid = (
        first.join(cal, how="cross")
        .filter(pl.col("ds") >= pl.col("_first"))
        .drop("_first")
        .join(b.select("symbol", "ds", "open"), on=["symbol", "ds"], how="left")
        .sort("symbol", "ds")
    )
    return grid.select(
        "date",
        "ds",
        "symbol",
        pl.col("open").is_not_null().alias("has_bar"),
        (pl.col("open") / pl.col("open").shift(1).over("symbol") - 1.0).alias("r"),
    )


def realized_target(panel: pl.DataFrame, h: int) -> pl.DataFrame:
    """Add y = r_{d+h}, the return a decision at d earns; null when not (yet) known."""
    return panel.with_columns(pl.col("r").shift(-h).over("symbol").alias("y"))


def add_context(
    panel: pl.DataFrame, vol_window: int, trend_window: int, input_size: int
) -> pl.DataFrame:
    """Add vol, trend and n_obs at each session from the r's of the last sessions ≤ d only.

    n_obs counts the known returns in the models' input window (the last `input_size`
    sessions ≤ d): a forecast with n_obs far below input_size came from a mostly masked,
    zero-filled window (a new listing or a gappy series).
    """
    r = pl.col("r")
    return panel.with_columns(
        r.is_not_null()
        .cast(pl.Int32)
        .rolling_sum(input_size, min_samples=1)
        .over("symbol")
        .alias("n_obs"),
        r.rolling_std(vol_window, min_samples=max(2, vol_window // 2)).over("symbol").alias("vol"),
        r.rolling_mean(trend_window, min_samples=max(1, trend_window // 2))
        .over("symbol")
        .alias("trend"),
    )


def attach_features(
    panel: pl.DataFrame, features: pl.DataFrame | None, names: tuple[str, ...]
) -> pl.DataFrame:
    """Left-join feature columns onto the grid (nulls and non-finite → 0)."""
    if features is None or not names:
        return panel
    out = panel.join(features.select(*_KEYS, *names), on=list(_KEYS), how="left")
    clean = [pl.when(pl.col(c).is_finite()).then(pl.col(c)).otherwise(0.0).alias(c) for c in names]
    return out.with_columns(clean)


def _nf_columns(names: tuple[str, ...]) -> list[pl.Expr]:
    return [
        pl.col("symbol").alias("unique_id"),
        pl.col("ds"),
        pl.col("r").fill_null(0.0).alias("y"),
        pl.col("r").is_not_null().cast(pl.Float64).alias("available_mask"),
        *[pl.col(c).fill_null(0.0) for c in names],
    ]


def training_frame(panel: pl.DataFrame, names: tuple[str, ...], cutoff_ds: int) -> pl.DataFrame:
    """NeuralForecast training rows: ds ≤ cutoff, from each symbol's first known return.

    Symbols with fewer than 2 known returns by the cutoff are left out (nothing to learn).
    """
    known = panel.filter(pl.col("ds") <= cutoff_ds)
    first = (
        known.filter(pl.col("r").is_not_null())
        .group_by("symbol")
        .agg(pl.col("ds").min().alias("_first"), pl.len().alias("_n"))
        .filter(pl.col("_n") >= 2)
    )
    rows = known.join(first, on="symbol", how="inner").filter(pl.col("ds") >= pl.col("_first"))
    return rows.sort("symbol", "ds").select(_nf_columns(names))


def prediction_frame(
    panel: pl.DataFrame, names: tuple[str, ...], symbols: list[str], ds_lo: int, ds_hi: int
) -> pl.DataFrame:
    """Full grid ds_lo..ds_hi for `symbols`: rows outside a symbol's data (before its first
    bar, or the h padding rows past the last session) are masked zeros, which the models
    never read as inputs for cutoffs ≤ the last session."""
    grid = pl.DataFrame({"symbol": symbols}).join(
        pl.DataFrame({"ds": pl.int_range(ds_lo, ds_hi + 1, eager=True)}), how="cross"
    )
    keep = ["symbol", "ds", "r", *names]
    rows = grid.join(panel.select(keep), on=["symbol", "ds"], how="left")
    return rows.sort("symbol", "ds").select(_nf_columns(names))


def session_ds(panel: pl.DataFrame, when: dt.date, what: str) -> int:
    """Ordinal of the last session ≤ `when` (raises if `when` precedes the data)."""
    hit = panel.filter(pl.col("date") <= when)
    if hit.height == 0:
        raise ValueError(f"{what} {when} precedes the first session {panel['date'].min()}")
    return int(hit["ds"].max())
