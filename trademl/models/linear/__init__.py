"""The regularized linear alpha sleeve: ridge or elastic net on the same features and the same
CPCV layout as the equities sleeves (so the stacker can combine them)."""

from trademl.models.linear.estimator import LINEAR_GRID, LinearAlpha

__all__ = ["LINEAR_GRID", "LinearAlpha"]
