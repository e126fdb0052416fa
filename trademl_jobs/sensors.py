"""Sensors: trade after the daily run; retrain the alpha sleeves when the served alpha's live
rank IC decays."""

import dagster as dg
import polars as pl

from resources.lake import LakeError, LakeResource
from resources.settings import SettingsResource
from trademl.models.equities.monitor import live_rank_ic
from trademl_assets.partitions import SESSIONS
from trademl_jobs.jobs import alpha_train_job, daily_job, trade_job


@dg.sensor(
    job=alpha_train_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def live_ic_retrain_sensor(
    context: dg.SensorEvaluationContext, lake_store: LakeResource, settings: SettingsResource
) -> dg.RunRequest | dg.SkipReason:
    """Request a retrain as of the latest session when the live rank IC of the model-served
    alpha scores (every path but the fit-free fallback) < `equities.live_ic_floor`."""
    cfg = settings.get().equities
    keys = SESSIONS.get_partition_keys()[-cfg.live_ic_window :]
    lake = lake_store.lake
    written = set(lake.partitions("alpha_scores")) & set(lake.partitions("labels"))
    window = [k for k in keys if k in written]
    if len(window) < cfg.live_ic_window // 2:
        return dg.SkipReason(f"only {len(window)} of {len(keys)} sessions have scores and labels")
    try:
        scores = lake.scan("alpha_scores", window).filter(pl.col("path") != "fit_free").collect()
        labels = lake.scan("labels", window).collect()
    except LakeError as exc:
        return dg.SkipReason(str(exc))
    ic, n = live_rank_ic(scores, labels, label=cfg.label)
    context.log.info(f"live rank IC over {n} sessions: {ic:.4f} (floor {cfg.live_ic_floor})")
    if n == 0 or ic >= cfg.live_ic_floor:
        return dg.SkipReason(f"live rank IC {ic:.4f} over {n} sessions is not below the floor")
    latest = keys[-1]
    return dg.RunRequest(
        run_key=f"live-ic-{latest}",
        partition_key=latest,
        tags={"trademl/reason": f"live rank IC {ic:.4f} < {cfg.live_ic_floor}"},
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[daily_job],
    request_job=trade_job,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def trade_after_daily_sensor(
    context: dg.RunStatusSensorContext,
) -> dg.RunRequest | dg.SkipReason:
    """When `daily` succeeds for the latest completed session, report and place its orders.

    Backfills of past sessions never trade: orders only go out for the latest session.
    """
    key = context.dagster_run.tags.get("dagster/partition")
    latest = SESSIONS.get_last_partition_key()
    if key != latest:
        return dg.SkipReason(f"daily run for {key or 'a range'} is not the latest session {latest}")
    return dg.RunRequest(run_key=f"trade-{key}", partition_key=key)
