"""A straightforward pandas implementation of the registry features (benchmark reference only).

It mirrors `trademl.features.build.build_features` definition by definition, written the
way one would in idiomatic pandas: a (symbol × session) grid via `reindex`, then
`groupby("symbol").rolling(...)`, `groupby("symbol").shift(...)` and
`groupby("date").rank()/transform()`. It is not used by the platform; the benchmark
times it against the polars builder and checks that both produce the same numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

ANNUAL = math.sqrt(252.0)


def _min_obs(window: int) -> int:
    return max(2, math.ceil(0.75 * window))


def _rolling(df: pd.DataFrame, col: str, window: int, min_periods: int | None = None):
    """Trailing per-symbol rolling window over the session grid (nulls are not counted)."""
    n = _min_obs(window) if min_periods is None else min_periods
    return df.groupby("symbol", sort=False)[col].rolling(window, min_periods=n)


def _aligned(s: pd.Series) -> pd.Series:
    """Drop the group level `groupby().rolling()` prepends so the result aligns with the frame."""
    return s.droplevel(0)


def build_features_pandas(
    bars: pd.DataFrame,
    sessions: Sequence[dt.date],
    *,
    cross_sectional: Sequence[str],
    ffill_limit: int = 5,
    out_sessions: Sequence[dt.date] | None = None,
) -> pd.DataFrame:
    """Features for every bar dated in `out_sessions` (default: all `sessions`), in pandas.

    Same contract as the polars builder: `bars` is long format (date, symbol, open, high,
    low, close, volume); the output has `date`, `symbol` and the features, sorted by date
    then symbol, with NaN where the polars builder has null.
    """
    grid_dates = pd.DatetimeIndex(pd.to_datetime(list(sessions))).astype("datetime64[ns]")
    bars = bars.assign(date=pd.to_datetime(bars["date"]).astype("datetime64[ns]"))
    bars = bars[(bars["date"] >= grid_dates[0]) & (bars["date"] <= grid_dates[-1])]

    # The full (symbol × session) grid, sorted by symbol then date; a missing bar is a NaN row.
    symbols = np.sort(bars["symbol"].unique())
    grid = pd.MultiIndex.from_product([symbols, grid_dates], names=["symbol", "date"])
    df = bars.set_index(["symbol", "date"])[["open", "close", "volume"]].reindex(grid).reset_index()
    has_bar = df["close"].notna()
    by_sym = df.groupby("symbol", sort=False)

    df["close_ff"] = by_sym["close"].ffill(limit=ffill_limit)
    by_sym = df.groupby("symbol", sort=False)
    prev = by_sym["close_ff"].shift(1)
    df["ret_1"] = np.log(df["close_ff"] / prev).where(has_bar)
    df["gap"] = np.log(df["open"] / prev).where(has_bar)
    df["dollar_volume"] = df["close"] * df["volume"]
    df["mkt_ret"] = df.groupby("date")["ret_1"].transform("mean")
    by_sym = df.groupby("symbol", sort=False)
    cf = df["close_ff"]

    feats = pd.DataFrame(index=df.index)
    for k in (5, 20, 60, 126):
        feats[f"mom_{k}"] = cf / by_sym["close_ff"].shift(k) - 1.0
    feats["mom_12_1"] = by_sym["close_ff"].shift(21) / by_sym["close_ff"].shift(252) - 1.0

    angle = 2 * math.pi * df["date"].dt.dayofweek / 5  # Monday = 0
    feats["dow_sin"] = np.sin(angle)
    feats["dow_cos"] = np.cos(angle)

    mean20 = _aligned(_rolling(df, "close_ff", 20).mean())
    std20 = _aligned(_rolling(df, "close_ff", 20).std())
    feats["close_z_20"] = (df["close"] - mean20) / std20
    feats["rvol_20"] = _aligned(_rolling(df, "ret_1", 20).std()) * ANNUAL
    feats["rvol_60"] = _aligned(_rolling(df, "ret_1", 60).std()) * ANNUAL
    feats["adv_20"] = _aligned(_rolling(df, "volume", 20).mean())
    feats["dollar_vol_20"] = _aligned(_rolling(df, "dollar_volume", 20).mean())
    feats["bb_pos_20"] = (df["close"] - (mean20 - 2 * std20)) / (4 * std20)
    feats["gap_1"] = df["gap"]
    feats["gap_mean_20"] = _aligned(_rolling(df, "gap", 20).mean())
    feats["gap_std_20"] = _aligned(_rolling(df, "gap", 20).std())
    high_252 = _aligned(_rolling(df, "close_ff", 252, min_periods=60).max())
    feats["dd_252"] = cf / high_252 - 1.0

    # Beta on pairwise-complete (name, market) returns: market only where the name has one.
    df["y"] = df["mkt_ret"].where(df["ret_1"].notna())
    df["xy"] = df["ret_1"] * df["y"]
    df["yy"] = df["y"] * df["y"]
    mx = _aligned(_rolling(df, "ret_1", 60).mean())
    my = _aligned(_rolling(df, "y", 60).mean())
    mxy = _aligned(_rolling(df, "xy", 60).mean())
    myy = _aligned(_rolling(df, "yy", 60).mean())
    feats["beta_60"] = (mxy - mx * my) / (myy - my * my)
    feats["mkt_rvol_20"] = _aligned(_rolling(df, "mkt_ret", 20).std()) * ANNUAL

    keep = has_bar.copy()
    if out_sessions is not None:
        wanted = pd.DatetimeIndex(pd.to_datetime(list(out_sessions))).astype("datetime64[ns]")
        keep &= df["date"].isin(wanted)
    out = df.loc[keep, ["date", "symbol"]].join(feats.loc[keep])
    del df, feats, mean20, std20, high_252, mx, my, mxy, myy  # free the grid before the xs pass

    by_date = out.groupby("date", sort=False)
    for name in cross_sectional:
        col = by_date[name]
        out[f"xs_rank_{name}"] = col.rank(method="average") / col.transform("count")
    for name in cross_sectional:
        col = by_date[name]
        out[f"xs_z_{name}"] = (out[name] - col.transform("mean")) / col.transform("std")
    # Rows are in (symbol, date) order, so a stable sort on date gives (date, symbol).
    return out.sort_values("date", kind="stable", ignore_index=True)
