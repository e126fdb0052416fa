"""The rotten apples as a table: OOS forecasts keyed by the session their outcome became known.

A forecast made at session d for the return r_{d+h} is only a complete training sample once
r_{d+h} is realized, at session d+h. Keying the rows by that session (like labels by their
end t1) makes the table point in time: partition s holds exactly what was known at s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from trademl.validation.metrics import ic_by_session, ic_summary

__all__ = ["by_realization", "forecast_quality"]


def by_realization(oos: pl.DataFrame, sessions: Sequence[Any], h: int) -> pl.DataFrame:
    """`oos_forecasts` rows with a realized y, re-keyed: `decision_date` = the forecast's
    session d, `date` = the session h later when y = r_{d+h} became known.

    `sessions` is the sorted session grid of the bars the forecasts came from.
    """
    grid = pl.DataFrame({"decision_date": pl.Series(list(sessions), dtype=pl.Date)})
    grid = grid.with_columns(pl.col("decision_date").shift(-h).alias("date"))
    return (
        oos.filter(pl.col("y").is_not_null() & pl.col("y").is_finite())
        .rename({"date": "decision_date"})
        .join(grid, on="decision_date", how="inner")
        .filter(pl.col("date").is_not_null())
        .select("date", pl.exclude("date"))
        .sort("date", "symbol")
    )


def forecast_quality(signals: pl.DataFrame) -> dict[str, float]:
    """Per-session rank IC of each forecast column with the realized y, and the hit rate of
    the blend's sign, over the rows of `signals` (NaN when there is nothing to judge)."""
    out: dict[str, float] = {"n_rows": float(signals.height)}
    if signals.height == 0:
        return out | {"rank_ic_mean": math.nan, "hit_rate": math.nan}
    session = signals.get_column("decision_date").to_physical().to_numpy()
    y = signals.get_column("y").to_numpy()
    for col, key in (("y_hat", ""), ("y_hat_patchtst", "_patchtst"), ("y_hat_nhits", "_nhits")):
        summ = ic_summary(ic_by_session(signals.get_column(col).to_numpy(), y, session))
        out[f"rank_ic_mean{key}"] = summ["rank_ic_mean"]
        out[f"rank_ic_t_stat{key}"] = summ["rank_ic_t_stat"]
    yh = signals.get_column("y_hat").to_numpy()
    ok = np.isfinite(yh) & np.isfinite(y) & (y != 0) & (yh != 0)
    out["hit_rate"] = float((np.sign(yh[ok]) == np.sign(y[ok])).mean()) if ok.any() else math.nan
    out["n_sessions"] = float(np.unique(session).size)
    return out
