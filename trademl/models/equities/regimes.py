"""Per-regime evaluation: does the alpha hold up when the market is stressed?

The regime is the market-volatility mask of `weights.high_vol_flags` applied to the
`mkt_rvol_20` feature (the equal-weight market's realized vol, identical for every name of
a session), so the mask is point in time and computed from the training rows themselves.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from trademl.models.equities.weights import high_vol_flags

REGIME_FEATURE = "mkt_rvol_20"


def session_regimes(
    frame: pl.DataFrame,
    session: np.ndarray,
    *,
    vol_col: str = REGIME_FEATURE,
    quantile: float = 0.8,
    min_history: int = 60,
) -> pl.DataFrame:
    """[session, high_vol] per unique session ordinal of the rows (sorted by session).

    Raises ValueError naming `vol_col` when the frame lacks it.
    """
    if vol_col not in frame.columns:
        raise ValueError(f"regime column {vol_col!r} is not among the dataset's features")
    per = (
        pl.DataFrame({"session": session, "vol": frame.get_column(vol_col).cast(pl.Float64)})
        .group_by("session")
        .agg(pl.col("vol").drop_nans().median())
        .sort("session")
    )
    vol = per.get_column("vol").fill_null(np.nan).to_numpy()
    flags = high_vol_flags(vol, quantile=quantile, min_history=min_history)
    return per.select("session").with_columns(pl.Series("high_vol", flags))


def rank_ic_by_regime(per_session_ic: pl.DataFrame, regimes: pl.DataFrame) -> dict[str, float]:
    """Mean rank IC and session counts in the calm and the high-vol regime.

    `per_session_ic` is `ic_by_session` output (keyed by the same session ordinals).
    """
    joined = per_session_ic.join(regimes, on="session", how="inner")
    out: dict[str, float] = {}
    for name, flag in (("high_vol", True), ("calm", False)):
        v = joined.filter(pl.col("high_vol") == flag).get_column("rank_ic").to_numpy()
        v = v[np.isfinite(v)]
        out[f"rank_ic_mean_{name}"] = float(v.mean()) if v.size else math.nan
        out[f"n_sessions_{name}"] = float(v.size)
    return out
