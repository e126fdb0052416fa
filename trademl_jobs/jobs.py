"""Jobs and schedules: the daily session run."""

import dagster as dg

from trademl_assets.partitions import CALENDAR, SESSIONS

DAILY_SELECTION = dg.AssetSelection.groups("data", "features") | dg.AssetSelection.assets(
    "equities_xs_scores", "forecast_scores", "policy_actions", "target_weights", "backtest"
)
TRAIN_SELECTION = dg.AssetSelection.assets("equities_xs_model", "equities_xs_champion")

daily_job = dg.define_asset_job(
    "daily",
    selection=DAILY_SELECTION,
    partitions_def=SESSIONS,
    description="Bars, QC, features, labels, champion scores, target weights and the trailing "
    "backtest of one session (or a range: a single-run backfill).",
)

forecasts_train_job = dg.define_asset_job(
    "forecasts_train",
    selection=dg.AssetSelection.assets(
        "oos_signals",
        "oos_forecaster",
        "oos_forecaster_champion",
        "grpo_policy",
        "grpo_policy_champion",
    ),
    partitions_def=SESSIONS,
    description="OOS signals up to a session, the live forecasters and the GRPO policy as of "
    "it, each promoted only through its blocking gate.",
)

trade_job = dg.define_asset_job(
    "trade",
    selection=dg.AssetSelection.assets("daily_report", "orders"),
    partitions_def=SESSIONS,
    description="One session's report and orders (behind tripwires); runs after `daily`.",
)

reconciliation_job = dg.define_asset_job(
    "reconciliation",
    selection=dg.AssetSelection.assets("blotter"),
    partitions_def=SESSIONS,
    description="After the orders executed: the broker's fills and positions vs the plan.",
)

equities_train_job = dg.define_asset_job(
    "equities_train",
    selection=TRAIN_SELECTION,
    partitions_def=SESSIONS,
    description="Train the equities alpha as of a session (CPCV + HPO), gate and promote it.",
)


@dg.schedule(
    job=equities_train_job,
    cron_schedule="0 19 * * 5",
    execution_timezone=str(CALENDAR.tz),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every Friday evening: retrain as of the latest completed session."""
    session = CALENDAR.latest_completed_session(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"retrain-{session}", partition_key=session.isoformat())


@dg.schedule(
    job=daily_job,
    cron_schedule="30 18 * * 1-5",
    execution_timezone=str(CALENDAR.tz),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """After each close: materialize the session that just completed (skips holidays)."""
    now = context.scheduled_execution_time
    session = CALENDAR.latest_completed_session(now)
    if session != now.astimezone(CALENDAR.tz).date():
        return dg.SkipReason(f"{now.date()} is not a {CALENDAR.exchange} session")
    return dg.RunRequest(run_key=session.isoformat(), partition_key=session.isoformat())


@dg.schedule(
    job=reconciliation_job,
    cron_schedule="30 16 * * 1-5",
    execution_timezone=str(CALENDAR.tz),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def reconciliation_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """After a session's close: reconcile the orders planned at the previous session's close,
    which executed during this one (skips days the exchange is closed: nothing traded)."""
    now = context.scheduled_execution_time
    today = now.astimezone(CALENDAR.tz).date()
    if not CALENDAR.is_session(today):
        return dg.SkipReason(f"{today} is not a {CALENDAR.exchange} session: nothing traded")
    session = CALENDAR.previous_session(today)
    if session is None:
        return dg.SkipReason(f"{today} is the calendar's first session: no orders before it")
    return dg.RunRequest(run_key=f"blotter-{session}", partition_key=session.isoformat())


@dg.schedule(
    job=forecasts_train_job,
    cron_schedule="0 21 * * 5",
    execution_timezone=str(CALENDAR.tz),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def weekly_forecasts_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every Friday night: signals, forecasters and policy as of the latest session."""
    session = CALENDAR.latest_completed_session(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"forecasts-{session}", partition_key=session.isoformat())
