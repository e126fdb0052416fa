"""Portfolio construction: scores → dollar-neutral or long-only target weights per session."""

from trademl.portfolio.weights import (
    PortfolioParams,
    forecast_vol,
    kelly_weights,
    target_weights,
)

__all__ = ["PortfolioParams", "forecast_vol", "kelly_weights", "target_weights"]
