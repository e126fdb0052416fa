"""Exchange sessions (exchange-calendars): the partitions of every asset are sessions.

Building a calendar (and importing exchange-calendars and pandas for it) costs ≈ 0.4 s, and
every Dagster CLI start needs one to load its partitions. With a cache folder, a calendar is
built once a day (its horizon, a year ahead, moves with the date) and stored there as JSON;
every later start reads the same sessions and hours back in milliseconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from bisect import bisect_left, bisect_right
from functools import lru_cache
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

#: Hour (exchange local time) after which a session counts as completed for scheduling.
SESSION_DONE_HOUR = 17


class SessionCalendar:
    """Sorted sessions of one exchange between `start` and about a year from today.

    Parameters
    ----------
    exchange:
        An exchange-calendars code, e.g. ``XNYS``.
    start:
        The first date the calendar must cover (the earliest bar or partition).
    """

    def __init__(self, exchange: str = "XNYS", start: dt.date = dt.date(2000, 1, 3)) -> None:
        import exchange_calendars as xcals
        import pandas as pd

        try:
            cal = xcals.get_calendar(exchange, start=pd.Timestamp(start))
        except xcals.errors.InvalidCalendarName as exc:
            raise ValueError(
                f"calendar.exchange={exchange!r} is not an exchange-calendars code "
                "(e.g. XNYS, XLON, XTKS)"
            ) from exc
        tz = ZoneInfo(str(cal.tz))
        self._set(
            exchange,
            tz,
            [d.date() for d in cal.sessions],
            [o.to_pydatetime().astimezone(tz) for o in cal.opens],
            [c.to_pydatetime().astimezone(tz) for c in cal.closes],
        )

    def _set(
        self,
        exchange: str,
        tz: ZoneInfo,
        sessions: list[dt.date],
        opens: list[dt.datetime],
        closes: list[dt.datetime],
    ) -> None:
        self.exchange = exchange
        self.tz = tz
        self.sessions = sessions
        self.first = sessions[0]
        self.last = sessions[-1]
        self._index = {d: i for i, d in enumerate(sessions)}
        self._opens = opens
        self._closes = closes

    def to_json(self) -> dict[str, Any]:
        """Sessions and hours as plain values (opens/closes: POSIX seconds)."""
        return {
            "exchange": self.exchange,
            "tz": str(self.tz),
            "sessions": [d.isoformat() for d in self.sessions],
            "opens": [o.timestamp() for o in self._opens],
            "closes": [c.timestamp() for c in self._closes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionCalendar:
        """The calendar `to_json` wrote (same sessions, same hours in the same zone)."""
        tz = ZoneInfo(str(data["tz"]))
        sessions: list[str] = data["sessions"]
        opens: list[float] = data["opens"]
        closes: list[float] = data["closes"]
        if not (len(sessions) == len(opens) == len(closes)) or not sessions:
            raise ValueError("a calendar needs as many opens and closes as sessions")
        cal = cls.__new__(cls)
        cal._set(
            str(data["exchange"]),
            tz,
            [dt.date.fromisoformat(d) for d in sessions],
            [dt.datetime.fromtimestamp(t, tz) for t in opens],
            [dt.datetime.fromtimestamp(t, tz) for t in closes],
        )
        return cal

    def __repr__(self) -> str:
        return f"SessionCalendar({self.exchange}, {self.first}..{self.last})"

    def is_session(self, d: dt.date) -> bool:
        return d in self._index

    def index(self, d: dt.date) -> int:
        """Position of session `d`; ValueError if `d` is not a session."""
        try:
            return self._index[d]
        except KeyError:
            raise ValueError(f"{d} is not a {self.exchange} session") from None

    def sessions_in_range(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Sessions with start ≤ session ≤ end."""
        lo = bisect_left(self.sessions, start)
        hi = bisect_right(self.sessions, end)
        return self.sessions[lo:hi]

    def offset(self, d: dt.date, n: int) -> dt.date:
        """The session `n` sessions after (n > 0) or before (n < 0) session `d`."""
        i = self.index(d) + n
        if not 0 <= i < len(self.sessions):
            raise ValueError(f"{d} {n:+d} sessions falls outside the {self!r}")
        return self.sessions[i]

    def window_start(self, d: dt.date, n: int) -> dt.date:
        """The first session of the `n`-session window ending at `d` (clipped at the start)."""
        return self.sessions[max(0, self.index(d) - (n - 1))]

    def next_session(self, d: dt.date) -> dt.date:
        """The first session strictly after date `d` (which need not be a session)."""
        i = bisect_right(self.sessions, d)
        if i >= len(self.sessions):
            raise ValueError(f"no session after {d} in the {self!r}")
        return self.sessions[i]

    def hours(self, d: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """Open and close of session `d` (exchange time zone; early closes included)."""
        i = self.index(d)
        return self._opens[i], self._closes[i]

    def previous_session(self, d: dt.date) -> dt.date | None:
        """The last session strictly before date `d` (which need not be a session)."""
        i = bisect_left(self.sessions, d)
        return self.sessions[i - 1] if i > 0 else None

    def non_session_weekdays(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Weekdays in [start, end] the exchange is closed (holidays, closures)."""
        days = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
        return [d for d in days if d.weekday() < 5 and d not in self._index]

    def latest_completed_session(self, now: dt.datetime | None = None) -> dt.date:
        """The last session whose close is at or before `now` (default: the current time)."""
        now = now or dt.datetime.now(tz=self.tz)
        if now.tzinfo is None:
            raise ValueError("latest_completed_session needs a timezone-aware datetime")
        i = bisect_right(self.sessions, now.astimezone(self.tz).date())
        while i > 0:
            i -= 1
            if self._closes[i] <= now:
                return self.sessions[i]
        raise ValueError(f"no {self.exchange} session has closed before {now.isoformat()}")


@lru_cache(maxsize=8)
def get_calendar(
    exchange: str = "XNYS",
    start: dt.date = dt.date(2000, 1, 3),
    cache_dir: str | os.PathLike[str] | None = None,
) -> SessionCalendar:
    """A calendar, cached in the process and, with `cache_dir`, in
    ``<cache_dir>/calendars/`` for the rest of the day (building one costs ≈ 0.4 s)."""
    if cache_dir is None:
        return SessionCalendar(exchange, start)
    today = dt.date.today().isoformat()
    folder = Path(cache_dir) / "calendars"
    stamp = f"{exchange}-{start.isoformat()}-xcals{_dist_version('exchange_calendars')}"
    path = folder / f"{stamp}-built{today}.json"
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        return SessionCalendar.from_json(json.loads(path.read_text()))
    cal = SessionCalendar(exchange, start)
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(cal.to_json()))
        os.replace(tmp, path)  # readers see the whole file or none
        for old in folder.glob(f"{stamp}-built*.json"):  # earlier days' builds
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:  # a read-only home: the calendar is built on each start instead
        tmp.unlink(missing_ok=True)
    return cal
