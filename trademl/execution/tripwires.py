"""Pre-trade tripwires: any halt reason means no order of the session is sent.

Each rule is one entry in `RULES`: it sees the session's facts and limits and returns a
sentence with the numbers, or None. Rules fail closed: a missing or NaN fact halts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

QC_STATUSES = ("GREEN", "YELLOW", "RED")


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What is known about a session just before its orders would be sent.

    Parameters
    ----------
    qc_status
        The session's data-quality status: GREEN, YELLOW or RED.
    turnover
        Planned one-way turnover, Σ|order notional| / equity.
    gross
        Planned gross exposure, Σ|target weight|.
    latest_bar_date
        Date of the newest bar the plan was built from (None: unknown).
    drift
        True when a drift monitor flagged the model's inputs or outputs.
    """

    session: dt.date
    qc_status: str
    turnover: float
    gross: float
    latest_bar_date: dt.date | None
    drift: bool = False
    drift_detail: str = ""


@dataclass(frozen=True, slots=True)
class TripwireLimits:
    """Limits the facts are checked against.

    ``max_bar_lag_days`` is in calendar days: 0 means bars must be dated the session itself.
    """

    max_turnover: float = 0.5
    max_gross: float = 1.0
    max_bar_lag_days: int = 0
    halt_on_yellow: bool = False


Rule = Callable[[SessionFacts, TripwireLimits], str | None]


def _qc(f: SessionFacts, lim: TripwireLimits) -> str | None:
    status = str(getattr(f.qc_status, "value", f.qc_status)).upper()
    if status not in QC_STATUSES:
        return f"session {f.session}: QC status is {f.qc_status!r}, expected GREEN/YELLOW/RED"
    if status == "RED":
        return f"session {f.session}: data QC is RED"
    if status == "YELLOW" and lim.halt_on_yellow:
        return f"session {f.session}: data QC is YELLOW and halt_on_yellow is set"
    return None


def _turnover(f: SessionFacts, lim: TripwireLimits) -> str | None:
    if not math.isfinite(f.turnover):
        return f"session {f.session}: planned turnover is {f.turnover} (not a number)"
    if f.turnover > lim.max_turnover:
        return (
            f"session {f.session}: planned turnover {f.turnover:.2%} exceeds the limit "
            f"{lim.max_turnover:.2%}"
        )
    return None


def _gross(f: SessionFacts, lim: TripwireLimits) -> str | None:
    if not math.isfinite(f.gross):
        return f"session {f.session}: planned gross exposure is {f.gross} (not a number)"
    if f.gross > lim.max_gross + 1e-12:
        return (
            f"session {f.session}: planned gross exposure {f.gross:.2%} exceeds the cap "
            f"{lim.max_gross:.2%}"
        )
    return None


def _stale(f: SessionFacts, lim: TripwireLimits) -> str | None:
    if f.latest_bar_date is None:
        return f"session {f.session}: the date of the latest bar is unknown"
    lag = (f.session - f.latest_bar_date).days
    if lag < 0:
        return (
            f"session {f.session}: latest bar is dated {f.latest_bar_date}, after the session "
            "(look-ahead)"
        )
    if lag > lim.max_bar_lag_days:
        return (
            f"session {f.session}: data is stale: latest bar {f.latest_bar_date} is {lag} "
            f"day(s) old (allowed {lim.max_bar_lag_days})"
        )
    return None


def _drift(f: SessionFacts, lim: TripwireLimits) -> str | None:
    if f.drift:
        detail = f": {f.drift_detail}" if f.drift_detail else ""
        return f"session {f.session}: drift monitor flagged the session{detail}"
    return None


RULES: dict[str, Rule] = {
    "qc": _qc,
    "turnover": _turnover,
    "gross": _gross,
    "stale_data": _stale,
    "drift": _drift,
}


def check_tripwires(facts: SessionFacts, limits: TripwireLimits | None = None) -> list[str]:
    """Every halt reason for the session, in rule order; empty means orders may be sent."""
    lim = limits or TripwireLimits()
    return [reason for rule in RULES.values() if (reason := rule(facts, lim)) is not None]
