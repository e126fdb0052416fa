"""What the portfolio reads: alpha scores (champion, else a fit-free fallback) and risk.

Both come from data known at the session's close: scores from the champion as of that
session, risk from the session's point-in-time features.
"""

from __future__ import annotations

import math

import polars as pl

__all__ = ["ADV_FEATURE", "SIGMA_FEATURE", "alpha_scores", "risk_from_features"]

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


def alpha_scores(
    scores: pl.DataFrame, features: pl.DataFrame, *, fallback_feature: str | None
) -> pl.DataFrame:
    """(date, symbol, score, source) per feature row: the champion's score where a session has
    one, else `fallback_feature` (a fit-free signal such as 12-1 momentum), else no rows.

    `source` says which: ``equities_xs@<version>`` or ``fallback:<feature>``.
    """
    keys = features.select("date", "symbol")
    scored_days = (
        scores.get_column("date").unique() if scores.height else pl.Series([], dtype=pl.Date)
    )
    out = []
    if scores.height:
        version = (
            pl.col("model_version").cast(pl.String)
            if "model_version" in scores.columns
            else pl.lit("?")
        )
        out.append(
            keys.join(scores, on=["date", "symbol"], how="inner").select(
                "date",
                "symbol",
                pl.col("score").cast(pl.Float64),
                (pl.lit("equities_xs@") + version).alias("source"),
            )
        )
    if fallback_feature is not None:
        if fallback_feature not in features.columns:
            raise ValueError(
                f"portfolio fallback feature {fallback_feature!r} is not a feature column"
            )
        out.append(
            features.filter(~pl.col("date").is_in(scored_days.implode())).select(
                "date",
                "symbol",
                pl.col(fallback_feature).cast(pl.Float64).fill_null(float("nan")).alias("score"),
                pl.lit(f"fallback:{fallback_feature}").alias("source"),
            )
        )
    schema = {"date": pl.Date, "symbol": pl.String, "score": pl.Float64, "source": pl.String}
    if not out:
        return pl.DataFrame(schema=schema)
    return pl.concat([o.cast(schema) for o in out]).sort("date", "symbol")
