"""`rl_trajectories`: the logged dataset offline RL sizing learns from — the traded book's
decisions with documented exploration, appended per session as their rewards become known."""

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK
from resources.settings import SettingsResource
from trademl.models.offline_rl.trajectories import logged_book
from trademl.params import reward_config
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import RL_LOOKBACK, SESSIONS, SINGLE_RUN, sessions_of

RL_INS = {
    name: dg.AssetIn(name, partition_mapping=RL_LOOKBACK, metadata={MISSING_OK: True})
    for name in ("target_weights", "features", "bars")
}


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="sizing",
    io_manager_key="lake",
    ins=RL_INS,
    metadata={"partition_column": "known"},
    kinds={"polars", "delta"},
)
def rl_trajectories(
    context: dg.AssetExecutionContext,
    target_weights: pl.LazyFrame,
    features: pl.LazyFrame,
    bars: pl.LazyFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """Per session d, the book's decisions whose reward became known at d (decided lag + 1
    sessions before): state, the behaviour policy's bucket (1.0 × the target weight, or with
    probability ε a uniform one) with every bucket's probability, and the reward. A row is
    never rewritten by later data: its state comes from a fixed window before it."""
    s = settings.get()
    known = sessions_of(context.partition_keys)
    log = logged_book(
        target_weights.collect(),
        features.select("date", "symbol", s.policy.trend_feature).collect(),
        bars.select("date", "symbol", "open", "close").collect(),
        known,
        trend_feature=s.policy.trend_feature,
        price=s.backtest.price,
        lag=s.backtest.execution_lag,
        cfg=reward_config(s),
        epsilon=s.offline_rl.epsilon,
        seed=s.offline_rl.seed,
    )
    meta = frame_metadata(log, len(known))
    if log.height:
        meta["explored_share"] = dg.MetadataValue.float(
            float((log.get_column("bucket") != 1.0).mean())
        )
        meta["mean_reward_bps"] = dg.MetadataValue.float(float(log.get_column("reward").mean()))
    return dg.Output(log, metadata=meta)
