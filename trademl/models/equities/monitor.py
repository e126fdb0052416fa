"""Live monitoring of the champion: realized rank IC of its scores once labels are known."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from trademl.validation.metrics import ic_by_session, ic_summary


def live_rank_ic(scores: pl.DataFrame, labels: pl.DataFrame, *, label: str) -> tuple[float, int]:
    """Mean per-session rank IC of live scores against the labels realized since.

    Parameters
    ----------
    scores:
        (date, symbol, score) as `equities_xs_scores` writes them.
    labels:
        Long labels (date, symbol, t1, name, value); only rows named `label` are used, and
        only those already known (the caller reads label partitions up to today).

    Returns the mean rank IC and the number of sessions it averages (NaN, 0 if none).
    """
    joined = scores.join(
        labels.filter(pl.col("name") == label).select("date", "symbol", "value"),
        on=["date", "symbol"],
        how="inner",
    )
    if joined.height == 0:
        return float("nan"), 0
    session = joined.get_column("date").cast(pl.Int32).to_numpy()
    per = ic_by_session(
        joined.get_column("score").to_numpy(), joined.get_column("value").to_numpy(), session
    )
    summary = ic_summary(per)
    n = int(np.isfinite(per.get_column("rank_ic").to_numpy()).sum())
    mean = summary["rank_ic_mean"]
    return (float(mean) if mean is not None and math.isfinite(mean) else float("nan")), n
