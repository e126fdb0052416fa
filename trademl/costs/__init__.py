"""Transaction costs: fees, half spread, square-root impact, auction slippage, tiered borrow.

One `CostModel` prices trades for both the backtest and the order planner.
"""

from trademl.costs.model import (
    CostBreakdown,
    CostModel,
    borrow_cost,
    cost_breakdown,
    liquidity_tiers,
    participation,
)
from trademl.costs.trades import TRADE_COLUMNS, trade_costs

__all__ = [
    "TRADE_COLUMNS",
    "CostBreakdown",
    "CostModel",
    "borrow_cost",
    "cost_breakdown",
    "liquidity_tiers",
    "participation",
    "trade_costs",
]
