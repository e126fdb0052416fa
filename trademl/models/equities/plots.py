"""Plots a person reads when judging an alpha: rank IC by year, path Sharpe spread."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure


def rank_ic_by_year(per_session: pl.DataFrame) -> Figure:
    """Bar chart of the mean per-session rank IC in each calendar year."""
    by_year = (
        per_session.with_columns(pl.col("session").dt.year().alias("year"))
        .group_by("year")
        .agg(pl.col("rank_ic").mean())
        .sort("year")
    )
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    years = by_year.get_column("year").to_list()
    values = by_year.get_column("rank_ic").to_numpy()
    ax.bar([str(y) for y in years], values, color=["#2a7" if v > 0 else "#c44" for v in values])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("OOS rank IC by year (CPCV, mean over paths)")
    ax.set_ylabel("rank IC")
    fig.tight_layout()
    return fig


def path_sharpe_hist(sharpes: list[float]) -> Figure:
    """Histogram of the long-short Sharpe ratio over the CPCV backtest paths."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    arr = np.asarray(sharpes, dtype=float)
    ax.hist(arr[np.isfinite(arr)], bins=max(3, min(15, arr.size)), color="#47a")
    ax.axvline(float(np.nanmedian(arr)), color="black", linestyle="--", label="median")
    ax.set_title("Annualized Sharpe over CPCV paths (net of spread)")
    ax.set_xlabel("Sharpe")
    ax.legend()
    fig.tight_layout()
    return fig


def reliability_diagram(bins: pl.DataFrame) -> Figure:
    """Predicted probability vs observed frequency per bin, with the diagonal of perfection."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    filled = bins.filter(pl.col("count") > 0)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.plot(filled.get_column("mean_pred"), filled.get_column("frac_pos"), marker="o")
    ax.set_xlabel("predicted P(up)")
    ax.set_ylabel("observed frequency")
    ax.set_title("Reliability (OOS, CPCV)")
    fig.tight_layout()
    return fig
