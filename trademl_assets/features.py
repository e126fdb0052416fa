"""`features`: point-in-time features per session from a lookback window of bars."""

import dagster as dg
import polars as pl

from resources.lake import LakeResource
from resources.settings import SettingsResource
from trademl.features import build_features, feature_names
from trademl_assets.data import refuse_red_sessions
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import FEATURES_LOOKBACK, SESSIONS, SINGLE_RUN, sessions_of


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="features",
    io_manager_key="lake",
    ins={"bars": dg.AssetIn(partition_mapping=FEATURES_LOOKBACK)},
    metadata={"partition_column": "date"},
    kinds={"polars", "delta"},
)
def features(
    context: dg.AssetExecutionContext,
    bars: pl.LazyFrame,
    settings: SettingsResource,
    lake_store: LakeResource,
) -> dg.Output[pl.DataFrame]:
    """Registry features for every bar of the run's sessions; each uses only bars dated ≤ d."""
    cfg = settings.get().features
    window = sessions_of(context.asset_partition_keys_for_input("bars"))
    refuse_red_sessions(lake_store.lake, window, "features")
    out = build_features(
        bars,
        window,
        cross_sectional=cfg.cross_sectional,
        ffill_limit=cfg.ffill_limit,
        out_sessions=sessions_of(context.partition_keys),
    )
    names = feature_names(cfg.cross_sectional)
    meta = frame_metadata(out, len(context.partition_keys))
    meta["features"] = dg.MetadataValue.int(len(names))
    meta["lookback_sessions"] = dg.MetadataValue.int(len(window))
    if out.height:
        filled = out.select(pl.mean_horizontal([pl.col(n).is_not_null() for n in names]).mean())
        meta["non_null_share"] = dg.MetadataValue.float(float(filled.item()))
    return dg.Output(out, metadata=meta)
