"""TradeML domain library: data, features, labels, validation, models, portfolio, execution.

Plain typed Python on numpy/polars; it never imports dagster.
"""

__version__ = "0.1.0"
