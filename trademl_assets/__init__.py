"""Thin Dagster assets and checks, one module per stage, calling the trademl library."""

import warnings

import dagster as dg

# Single-run backfills and truncated lookbacks are deliberate; their "beta" notices are noise.
warnings.filterwarnings(
    "ignore",
    message=r".*(backfill_policy|allow_nonexistent_upstream_partitions).*",
    category=dg.BetaWarning,
)
