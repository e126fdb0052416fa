"""Exchange sessions (exchange-calendars): the partitions of every asset are sessions."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

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
        try:
            cal = xcals.get_calendar(exchange, start=pd.Timestamp(start))
        except xcals.errors.InvalidCalendarName as exc:
            raise ValueError(
                f"calendar.exchange={exchange!r} is not an exchange-calendars code "
                "(e.g. XNYS, XLON, XTKS)"
            ) from exc
        self.exchange = exchange
        self.tz = ZoneInfo(str(cal.tz))
        self.first = cal.first_session.date()
        self.last = cal.last_session.date()
        self.sessions: list[dt.date] = [d.date() for d in cal.sessions]
        self._index = {d: i for i, d in enumerate(self.sessions)}
        closes = cal.closes.dt.tz_convert(str(cal.tz))
        self._closes = [c.to_pydatetime() for c in closes]
        opens = cal.opens.dt.tz_convert(str(cal.tz))
        self._opens = [o.to_pydatetime() for o in opens]

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
        days = pd.bdate_range(start, end).date
        return [d for d in days if d not in self._index]

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
def get_calendar(exchange: str = "XNYS", start: dt.date = dt.date(2000, 1, 3)) -> SessionCalendar:
    """A cached calendar; building one costs ~0.5 s."""
    return SessionCalendar(exchange, start)
