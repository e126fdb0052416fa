"""`labels`: the labels that become known at each session (partitioned by their end t1)."""

import dagster as dg
import polars as pl

from resources.lake import LakeResource
from resources.settings import SettingsResource
from trademl.labels import compute_labels
from trademl_assets.data import refuse_red_sessions
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import LABELS_LOOKBACK, SESSIONS, SINGLE_RUN, sessions_of


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="features",
    io_manager_key="lake",
    ins={"bars": dg.AssetIn(partition_mapping=LABELS_LOOKBACK)},
    metadata={"partition_column": "t1"},
    kinds={"polars", "delta"},
)
def labels(
    context: dg.AssetExecutionContext,
    bars: pl.LazyFrame,
    settings: SettingsResource,
    lake_store: LakeResource,
) -> dg.Output[pl.DataFrame]:
    """Forward-return and triple-barrier labels whose window ends (t1) at the run's sessions.

    Partitioning by t1 keeps a partition point-in-time: session d holds only what
    was known at d's close, so a model as of d reads label partitions ≤ d.
    """
    cfg = settings.get().labels
    window = sessions_of(context.asset_partition_keys_for_input("bars"))
    refuse_red_sessions(lake_store.lake, window, "labels")
    wanted = pl.Series(sessions_of(context.partition_keys), dtype=pl.Date)
    out = compute_labels(bars.collect(), window, cfg).filter(pl.col("t1").is_in(wanted))
    meta = frame_metadata(out, len(context.partition_keys))
    counts = out.group_by("name").len().sort("name")
    meta["rows_by_label"] = dg.MetadataValue.json(dict(counts.iter_rows()))
    return dg.Output(out, metadata=meta)
