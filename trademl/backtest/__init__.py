"""Daily backtest engine (vectorized), long-frame helpers, performance metrics, plots.

Plots live in trademl.backtest.plots (imported on demand, it loads matplotlib).
"""

from trademl.backtest.engine import BacktestParams, BacktestResult, run_backtest
from trademl.backtest.frames import Panel, backtest_frames, build_panel, to_matrix
from trademl.backtest.metrics import performance_metrics

__all__ = [
    "BacktestParams",
    "BacktestResult",
    "Panel",
    "backtest_frames",
    "build_panel",
    "performance_metrics",
    "run_backtest",
    "to_matrix",
]
