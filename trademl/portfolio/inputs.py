"""What the portfolio reads besides the served alpha (`trademl.portfolio.router`): risk, from
the session's point-in-time features (known at its close)."""

from __future__ import annotations

import math

import polars as pl

__all__ = ["ADV_FEATURE", "SIGMA_FEATURE", "risk_from_features"]

#: Annualized realized vol feature → daily σ; ADV feature in shares.
SIGMA_FEATURE = "rvol_20"
ADV_FEATURE = "adv_20"


def risk_from_features(features: pl.DataFrame) -> pl.DataFrame:
    """(date, symbol, sigma, adv): daily σ = rvol_20/√252 and ADV (shares) per row.

    Raises ValueError naming a missing feature column.
    """
    missing = [c for c in ("date", "symbol", SIGMA_FEATURE, ADV_FEATURE) if c not in features]
    if missing:
        raise ValueError(f"features lack column(s) {missing} needed for portfolio risk")
    return features.select(
        "date",
        "symbol",
        (pl.col(SIGMA_FEATURE).cast(pl.Float64) / math.sqrt(252.0)).alias("sigma"),
        pl.col(ADV_FEATURE).cast(pl.Float64).alias("adv"),
    )
