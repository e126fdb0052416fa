"""Promotion rules of the linear sleeve: the CPCV sleeves' bars (path Sharpe, drawdown, DSR,
PBO, rank IC above the fit-free baseline) with its own thresholds (`linear.promotion`), AND a
rank IC above the linear champion's as of the session."""

from trademl.models.equities.promotion import Decision, decide

__all__ = ["Decision", "decide"]
