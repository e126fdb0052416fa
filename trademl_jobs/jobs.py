"""Jobs and schedules: the daily session run, the weekly trainings, trading, reconciliation."""

from typing import TYPE_CHECKING

import dagster as dg

from trademl.models.agents.snapshot import AGENTS
from trademl_assets.partitions import CALENDAR, SESSIONS, SNAPSHOT_YEARS
from trademl_assets.registry import ALPHA, SIZING, STACKER

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

#: What a session needs every day: data, features, labels, every sleeve champion's scores,
#: the router, the book (target and sized weights), the shadow books, the backtest and the
#: offline RL log of the rewards that became known (every session, so the log has no gaps).
DAILY_SELECTION = dg.AssetSelection.groups("data", "features") | dg.AssetSelection.assets(
    *[sp.scores_key for sp in ALPHA],
    "alpha_scores",
    "target_weights",
    "sized_weights",
    "shadow_weights",
    "shadow_books",
    "backtest",
    "rl_trajectories",
    *(["theses"] if any(sp.name == "thesis" for sp in ALPHA) else []),
)
#: Every alpha sleeve (and the OOS signals the forecasts sleeve is judged on), then the
#: stacker over the sleeves that passed: train → gate → champion, as of one session.
ALPHA_TRAIN_SELECTION = dg.AssetSelection.assets(
    "oos_signals",
    *[k for sp in ALPHA for k in (sp.model_key, sp.oof_key, sp.champion_key)],
    *([STACKER.model_key, STACKER.champion_key] if STACKER else []),
)
SIZING_TRAIN_SELECTION = dg.AssetSelection.assets(
    *[k for sp in SIZING for k in (sp.model_key, sp.champion_key)]
)

daily_job = dg.define_asset_job(
    "daily",
    selection=DAILY_SELECTION,
    partitions_def=SESSIONS,
    description="Bars, QC, features, labels, champion scores, the served alpha, target and "
    "sized weights, shadow books, the trailing backtest and the offline RL log of one "
    "session (or a range: a single-run backfill).",
)

alpha_train_job = dg.define_asset_job(
    "alpha_train",
    selection=ALPHA_TRAIN_SELECTION,
    partitions_def=SESSIONS,
    description="Every alpha sleeve as of a session (CPCV sleeves, the forecasters on their "
    "OOS signals), then the stacker over those that passed: each through its gate.",
)

sizing_train_job = dg.define_asset_job(
    "sizing_train",
    selection=SIZING_TRAIN_SELECTION,
    partitions_def=SESSIONS,
    description="The sizing policies as of a session, trained on the book's history and "
    "judged sized vs unsized on later sessions (the offline RL policy on its logged "
    "trajectories, by off-policy evaluation and a replay).",
)

trade_job = dg.define_asset_job(
    "trade",
    selection=dg.AssetSelection.assets("daily_report", "orders"),
    partitions_def=SESSIONS,
    description="One session's report and orders (behind tripwires); runs after `daily`.",
)

#: What a promotion changes for a session: every sleeve's scores, the served alpha, the book
#: (target and sized) and its shadows — no report, no orders.
RESCORE_SELECTION = dg.AssetSelection.assets(
    *[sp.scores_key for sp in ALPHA],
    "alpha_scores",
    "target_weights",
    "sized_weights",
    "shadow_weights",
)

rescore_job = dg.define_asset_job(
    "rescore",
    selection=RESCORE_SELECTION,
    partitions_def=SESSIONS,
    description="Re-score a session after a promotion (requested by promotion_rescore_sensor): "
    "sleeve scores, the served alpha, target and sized weights, shadow books; never trades.",
)


def _snapshot_job(model: str) -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        f"{model}_train",
        selection=dg.AssetSelection.assets(f"{model}_snapshot"),
        partitions_def=SNAPSHOT_YEARS,
        description=f"The `{model}` forecaster's snapshot as of a year end (what `POST "
        f"/train/{model}` launches): trained on that window, gated, registered `{model}`; a "
        "cached version is returned as it is.",
    )


lstm_train_job = _snapshot_job("lstm")
patchtst_train_job = _snapshot_job("patchtst")


def _agent_job(name: str) -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        f"{name}_train",
        selection=dg.AssetSelection.assets(f"{name}_agent"),
        partitions_def=SNAPSHOT_YEARS,
        description=f"The `{name}` allocation agent as of a year end (what `POST "
        f"/train/{name}/<mode>` launches; the run config's `mode` is full or finetune): "
        f"trained, gated, registered `{name}`; a cached version is returned as it is.",
    )


AGENT_JOBS = [_agent_job(name) for name in AGENTS]

reconciliation_job = dg.define_asset_job(
    "reconciliation",
    selection=dg.AssetSelection.assets("blotter"),
    partitions_def=SESSIONS,
    description="After the orders executed: the broker's fills and positions vs the plan.",
)


@dg.schedule(
    job=alpha_train_job,
    cron_schedule="0 19 * * 5",
    execution_timezone=str(CALENDAR.tz),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every Friday evening: every alpha sleeve and the stacker as of the latest session."""
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
    job=sizing_train_job,
    cron_schedule="0 21 * * 5",
    execution_timezone=str(CALENDAR.tz),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def weekly_sizing_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every Friday night, after the alpha retrain: the sizing policies as of the latest
    session."""
    session = CALENDAR.latest_completed_session(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"sizing-{session}", partition_key=session.isoformat())
