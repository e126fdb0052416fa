"""Jobs and schedules: the daily session run."""

import dagster as dg

from trademl_assets.partitions import CALENDAR, SESSIONS

DAILY_SELECTION = dg.AssetSelection.groups("data", "features")

daily_job = dg.define_asset_job(
    "daily",
    selection=DAILY_SELECTION,
    partitions_def=SESSIONS,
    description="Bars, QC, features and labels of one session (or a range, as a single run).",
)


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
