"""The forecasts sleeve as a cross-sectional alpha: the NeuralForecast blend ranked within
each session, judged (and stacked) on its walk-forward out-of-sample "rotten apples"."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from trademl.models.forecasts.apples import forecast_quality
from trademl.validation.layout import SplitLayout, walk_forward_layout

__all__ = ["QUALITY", "forecast_oof", "quality_metrics", "xs_rank"]

QUALITY = (
    "oos_rank_ic",
    "rank_ic_t_stat",
    "rank_ic_mean_patchtst",
    "rank_ic_mean_nhits",
    "hit_rate",
    "n_sessions",
)


def xs_rank(col: str, by: str) -> pl.Expr:
    """`col`'s rank within each `by` session scaled to [−0.5, 0.5] (null stays null)."""
    n = pl.col(col).count().over(by)
    return ((pl.col(col).rank("average").over(by) - 1) / (n - 1).clip(1) - 0.5).alias(col)


def quality_metrics(signals: pl.DataFrame) -> dict[str, float]:
    """The gate's inputs: the blend's OOS rank IC (and t-stat), each model's, the hit rate."""
    q = forecast_quality(signals)
    out = {
        "oos_rank_ic": q.get("rank_ic_mean", math.nan),
        "rank_ic_t_stat": q.get("rank_ic_t_stat", math.nan),
    }
    out |= {k: q.get(k, math.nan) for k in QUALITY if k not in out}
    return {k: float(v) for k, v in out.items()}


def forecast_oof(signals: pl.DataFrame) -> tuple[pl.DataFrame, SplitLayout]:
    """The realized OOS signals as OOF rows (date = the decision session, oof_path_0 = the
    blend ranked within it) and their walk-forward layout (the training cutoffs)."""
    oof = (
        signals.filter(pl.col("y_hat").is_finite())
        .select(
            pl.col("decision_date").alias("date"),
            "symbol",
            "y",
            pl.col("y_hat").alias("oof_path_0"),
            "train_end",
        )
        .with_columns(xs_rank("oof_path_0", "date"))
        .sort("date", "symbol")
    )
    cutoffs: list[dt.date] = oof.get_column("train_end").unique().drop_nulls().to_list()
    if oof.height == 0:
        raise ValueError("no realized OOS signals to publish as out-of-fold predictions")
    return oof.drop("train_end"), walk_forward_layout(oof.get_column("date").to_list(), cutoffs)
