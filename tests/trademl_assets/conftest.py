"""Materialize the real assets on a small synthetic market in an ephemeral instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from resources.lake import LakeIOManager, LakeResource
from resources.settings import MarketDataResource
from trademl_assets.data import bars
from trademl_assets.features import features
from trademl_assets.labels import labels
from trademl_jobs.definitions import defs

ASSETS = [bars, features, labels]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def run_assets(
    home: Path,
    keys: list[str],
    *,
    market: MarketDataResource | None = None,
    selection: list[str] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One run over `keys` (a single partition or a single-run range) with a lake under `home`."""
    store = LakeResource(root=str(home / "lake"))
    resources = {
        **defs.resources,
        "lake": LakeIOManager(store=store),
        "lake_store": store,
        "market_data": market or MarketDataResource(n_symbols=12, seed=3),
    }
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources,
        raise_on_error=raise_on_error,
    )


@pytest.fixture
def run(tmp_path):
    def _run(keys, **kw):
        return run_assets(tmp_path, keys, **kw)

    _run.home = tmp_path
    return _run
