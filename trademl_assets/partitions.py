"""The one partitions module: exchange-session partitions and the named lookback mappings.

Partition keys are sessions (YYYY-MM-DD). A session's partition exists from
17:00 exchange time on that day (after the close), so the last partition is
always the latest completed session. Lookbacks count sessions, not days.

Dagster fixes partitions and partition mappings when the definitions load, so the settings
they come from (`trademl.config.FIXED_AT_LOAD`: data start, calendar, label and training
windows, backtest and policy windows, the forecasters' input window, which sleeves exist)
are read here once, from the file in force at load. Every other setting is read at run time;
a run whose file changed a fixed one since is refused until the code location reloads.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import dagster as dg

from trademl.config import load_settings
from trademl.data.calendar import SESSION_DONE_HOUR, SessionCalendar, get_calendar
from trademl.features import required_history

SETTINGS = load_settings()
CALENDAR: SessionCalendar = get_calendar(
    SETTINGS.calendar.exchange,
    min(SETTINGS.data.start, SETTINGS.partitions_start) - dt.timedelta(days=45),
    SETTINGS.home / "cache",
)


def _exclusions(cal: SessionCalendar, start: dt.date) -> list[dt.datetime]:
    """Weekday ticks on which the exchange is closed (holidays, closures)."""
    return [
        dt.datetime.combine(d, dt.time(SESSION_DONE_HOUR))
        for d in cal.non_session_weekdays(start, cal.last)
    ]


SESSIONS = dg.TimeWindowPartitionsDefinition(
    start=SETTINGS.partitions_start.isoformat(),
    fmt="%Y-%m-%d",
    cron_schedule=f"0 {SESSION_DONE_HOUR} * * 1-5",
    timezone=str(CALENDAR.tz),
    end_offset=1,
    exclusions=_exclusions(CALENDAR, SETTINGS.partitions_start),
)

#: Sessions of bars (including d) that make every feature at d exact.
FEATURE_WINDOW = required_history(SETTINGS.features.ffill_limit)
#: Sessions of bars (including d) behind the labels that become known at d.
_lab = SETTINGS.labels
LABEL_WINDOW = (
    _lab.execution_lag
    + max(_lab.triple_barrier.max_holding + _lab.triple_barrier.vol_window, _lab.horizon + 1)
    + 1
)

with warnings.catch_warnings():
    # allow_nonexistent_upstream_partitions is "beta"; the first sessions need truncated windows.
    warnings.simplefilter("ignore", dg.BetaWarning)
    FEATURES_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(FEATURE_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )
    LABELS_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(LABEL_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )

    #: Sessions of features and labels a training snapshot as of d reads (d included): the
    #: configured window, or with `train_sessions: all` the cap, read as what the lake holds.
    TRAIN_WINDOW = SETTINGS.train_window
    TRAIN_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(TRAIN_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )

    #: Sessions of target weights, bars and features a backtest as of d replays (d included).
    BACKTEST_WINDOW = SETTINGS.backtest.sessions
    BACKTEST_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(BACKTEST_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )
    #: The previous session and d: yesterday's book for today's expected trades.
    PREVIOUS_SESSION = dg.TimeWindowPartitionMapping(
        start_offset=-1, allow_nonexistent_upstream_partitions=True
    )
    #: Sessions of features the order tripwires' drift monitor compares d with.
    DRIFT_WINDOW = 61
    DRIFT_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(DRIFT_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )

    #: Bars/features the OOS forecasts read: everything since the data start (capped at 20
    #: years); read with MISSING_OK, so the window is whatever history the lake holds.
    FORECAST_HISTORY = dg.TimeWindowPartitionMapping(
        start_offset=-(20 * 252 - 1), allow_nonexistent_upstream_partitions=True
    )
    _fc = SETTINGS.forecasts
    #: Sessions of bars/features a live forecast at d reads: the models' input window plus
    #: the vol/trend context.
    FORECAST_INPUT_WINDOW = _fc.input_size + max(_fc.vol_window, _fc.trend_window) + 2
    FORECAST_INPUT_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(FORECAST_INPUT_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )
    #: Sessions of realized OOS signals a policy as of d trains and tests on.
    POLICY_WINDOW = SETTINGS.policy.train_sessions
    POLICY_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(POLICY_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )

    #: Sessions of book history behind one logged offline-RL decision (its rolling state
    #: windows and a month of episode), plus the lag until its reward is known.
    _rl = SETTINGS.offline_rl
    RL_WINDOW = (
        max(_rl.regime_window, _rl.drawdown_window) + 23 + SETTINGS.backtest.execution_lag + 2
    )
    RL_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(RL_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )

    #: Sessions of logged trajectories an offline RL policy as of d learns from and is judged on.
    RL_TRAIN_WINDOW = _rl.train_sessions
    RL_TRAIN_LOOKBACK = dg.TimeWindowPartitionMapping(
        start_offset=-(RL_TRAIN_WINDOW - 1), allow_nonexistent_upstream_partitions=True
    )

SINGLE_RUN = dg.BackfillPolicy.single_run()
#: Assets with a per-session side effect (a report, orders at a broker) backfill one run each.
PER_SESSION = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


def sessions_of(keys: Sequence[str]) -> list[dt.date]:
    """Partition keys → session dates (keys are produced by SESSIONS, so they are sessions)."""
    return [dt.date.fromisoformat(k) for k in keys]


#: Yearly snapshots of the sequence forecasters (`lstm_snapshot`): the key is the year
#: ("2024"); a year's partition exists once the year has ended.
SNAPSHOT_YEARS = dg.TimeWindowPartitionsDefinition(
    start=str(SETTINGS.partitions_start.year),
    fmt="%Y",
    cron_schedule="0 0 1 1 *",
    timezone=str(CALENDAR.tz),
)


def snapshot_sessions(key: str, years: int) -> list[dt.date]:
    """Sessions a snapshot for year `key` trains on: the `years` calendar years ending with
    that year, from the partitions' start (its last session is the year's last session)."""
    year = int(key)
    start = max(dt.date(year - years + 1, 1, 1), SETTINGS.partitions_start)
    return CALENDAR.sessions_in_range(start, dt.date(year, 12, 31))


def agent_sessions(key: str, years: int, lead: int) -> tuple[list[dt.date], list[dt.date]]:
    """(the `lead` sessions before a year-`key` window — as many as the calendar has from the
    data start — and the window's sessions): an agent's state at its first week reads them."""
    window = snapshot_sessions(key, years)
    at = CALENDAR.index(window[0])
    before = CALENDAR.sessions[max(at - lead, 0) : at]
    return [d for d in before if d >= SETTINGS.data.start], window


def agent_live_sessions(key: str, upto: dt.date, lead: int) -> tuple[list[dt.date], list[dt.date]]:
    """(the `lead` sessions before, and the sessions from) the first session after year
    `key` — when an agent as of that year end starts trading in the shadow — through the
    last session of `upto`'s ISO week (so the week ends are the calendar's, not the data's)."""
    first = dt.date(int(key) + 1, 1, 1)
    week_end = upto + dt.timedelta(days=6 - upto.weekday())
    live = CALENDAR.sessions_in_range(first, min(week_end, CALENDAR.last))
    if not live:
        return [], []
    at = CALENDAR.index(live[0])
    before = CALENDAR.sessions[max(at - lead, 0) : at]
    return [d for d in before if d >= SETTINGS.data.start], live


def prior_snapshot_keys(key: str, years: int) -> list[str]:
    """The snapshot partitions an agent as of year `key` reads: for each calendar year of its
    window, the year before (a week's forecasts come from the previous year end's snapshot)."""
    window = snapshot_sessions(key, years)
    return [str(y - 1) for y in range(window[0].year, window[-1].year + 1)]


def snapshot_window(key: str, years: int) -> tuple[str, str]:
    """(first, last) session of `snapshot_sessions`, as the version key records them."""
    sessions = snapshot_sessions(key, years)
    return sessions[0].isoformat(), sessions[-1].isoformat()


#: An agent as of a year end reads (at least) the forecaster snapshot of the year before.
PRIOR_SNAPSHOT_YEAR = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
