"""XNYS sessions: holidays and closures, session arithmetic, and when a session counts as done."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from trademl.data.calendar import SessionCalendar, get_calendar

ET = ZoneInfo("America/New_York")
UTC = dt.UTC


@pytest.fixture(scope="module")
def cal() -> SessionCalendar:
    return get_calendar("XNYS", dt.date(2020, 1, 2))


def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def test_holidays_and_closures_are_not_sessions(cal: SessionCalendar) -> None:
    assert not cal.is_session(d("2025-07-04"))  # Independence Day
    assert not cal.is_session(d("2025-01-09"))  # national day of mourning (President Carter)
    assert not cal.is_session(d("2025-07-05"))  # Saturday
    assert cal.is_session(d("2025-07-03")) and cal.is_session(d("2025-01-10"))
    assert cal.non_session_weekdays(d("2025-01-01"), d("2025-01-31")) == [
        d("2025-01-01"),
        d("2025-01-09"),
        d("2025-01-20"),
    ]
    # 261 weekdays in 2025 minus 11 weekday closures.
    assert len(cal.sessions_in_range(d("2025-01-01"), d("2025-12-31"))) == 250


def test_sessions_are_sorted_weekdays(cal: SessionCalendar) -> None:
    s = cal.sessions_in_range(d("2024-01-01"), d("2025-12-31"))
    assert s == sorted(set(s)) and all(x.weekday() < 5 for x in s)
    assert cal.sessions_in_range(d("2025-07-04"), d("2025-07-06")) == []
    assert cal.sessions_in_range(d("2025-07-03"), d("2025-07-07")) == [
        d("2025-07-03"),
        d("2025-07-07"),
    ]
    assert cal.first == d("2020-01-02")


def test_index_and_offset(cal: SessionCalendar) -> None:
    assert cal.offset(d("2025-07-03"), 1) == d("2025-07-07")
    assert cal.offset(d("2025-01-10"), -1) == d("2025-01-08")
    assert cal.offset(d("2025-01-08"), 2) == d("2025-01-13")
    assert cal.offset(d("2025-03-10"), 0) == d("2025-03-10")
    assert cal.index(d("2025-01-10")) - cal.index(d("2025-01-08")) == 1
    with pytest.raises(ValueError, match="not a XNYS session"):
        cal.offset(d("2025-07-04"), 1)
    with pytest.raises(ValueError, match="outside"):
        cal.offset(cal.first, -1)
    with pytest.raises(ValueError, match="outside"):
        cal.offset(cal.last, 1)


def test_window_start(cal: SessionCalendar) -> None:
    assert cal.window_start(d("2025-01-10"), 1) == d("2025-01-10")
    assert cal.window_start(d("2025-01-10"), 3) == d("2025-01-07")  # 7, 8, 10
    window = cal.sessions_in_range(cal.window_start(d("2025-07-07"), 20), d("2025-07-07"))
    assert len(window) == 20 and window[-1] == d("2025-07-07")
    assert cal.window_start(cal.first, 10) == cal.first  # clipped


def test_previous_session(cal: SessionCalendar) -> None:
    assert cal.previous_session(d("2025-07-07")) == d("2025-07-03")
    assert cal.previous_session(d("2025-07-05")) == d("2025-07-03")  # a Saturday
    assert cal.previous_session(d("2025-07-04")) == d("2025-07-03")  # a holiday
    assert cal.previous_session(d("2025-01-10")) == d("2025-01-08")
    assert cal.previous_session(cal.first) is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2025, 3, 14, 15, 0, tzinfo=ET), "2025-03-13"),  # Friday before the close
        (dt.datetime(2025, 3, 14, 16, 0, tzinfo=ET), "2025-03-14"),  # at the close
        (dt.datetime(2025, 3, 14, 16, 30, tzinfo=ET), "2025-03-14"),  # Friday after the close
        (dt.datetime(2025, 3, 15, 12, 0, tzinfo=ET), "2025-03-14"),  # Saturday
        (dt.datetime(2025, 3, 17, 9, 0, tzinfo=ET), "2025-03-14"),  # Monday morning
        # Same instants in UTC (EDT = UTC−4 after 2025-03-09).
        (dt.datetime(2025, 3, 14, 19, 59, tzinfo=UTC), "2025-03-13"),
        (dt.datetime(2025, 3, 14, 20, 30, tzinfo=UTC), "2025-03-14"),
        # Winter (EST = UTC−5): 20:30 UTC is 15:30 ET, still before the close.
        (dt.datetime(2025, 2, 14, 20, 30, tzinfo=UTC), "2025-02-13"),
        # Early close at 13:00 the day before Independence Day.
        (dt.datetime(2025, 7, 3, 13, 30, tzinfo=ET), "2025-07-03"),
        (dt.datetime(2025, 7, 3, 12, 30, tzinfo=ET), "2025-07-02"),
        (dt.datetime(2025, 7, 4, 18, 0, tzinfo=ET), "2025-07-03"),  # holiday evening
        (dt.datetime(2025, 1, 9, 18, 0, tzinfo=ET), "2025-01-08"),  # closure evening
    ],
)
def test_latest_completed_session(cal: SessionCalendar, now: dt.datetime, expected: str) -> None:
    assert cal.latest_completed_session(now) == d(expected)


def test_latest_completed_session_needs_an_aware_datetime(cal: SessionCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.latest_completed_session(dt.datetime(2025, 3, 14, 16, 30))


def test_latest_completed_session_before_the_first_close(cal: SessionCalendar) -> None:
    with pytest.raises(ValueError, match="no XNYS session has closed"):
        cal.latest_completed_session(dt.datetime(2020, 1, 2, 10, 0, tzinfo=ET))


def test_unknown_exchange_raises() -> None:
    with pytest.raises(ValueError, match="XXXX"):
        SessionCalendar("XXXX", dt.date(2024, 1, 2))
    with pytest.raises(ValueError, match="exchange-calendars code"):
        get_calendar("NOPE", dt.date(2024, 1, 2))


def test_other_exchange_uses_its_own_time_zone() -> None:
    lon = get_calendar("XLON", dt.date(2024, 1, 2))
    assert str(lon.tz) == "Europe/London"
    assert not lon.is_session(d("2025-12-26"))  # Boxing Day
    # XLON closes 16:30 London; 16:00 London on a Friday is before it.
    friday = dt.datetime(2025, 3, 14, 16, 0, tzinfo=ZoneInfo("Europe/London"))
    assert lon.latest_completed_session(friday) == d("2025-03-13")


def test_a_cached_calendar_is_the_built_one_and_is_read_back_without_building(
    tmp_path, monkeypatch
) -> None:
    """With a cache folder the first call builds and stores the calendar; a later process
    (here: a cleared in-process cache, with building made impossible) reads the same
    sessions, hours and zone back. A damaged file is rebuilt; an earlier day's is removed."""
    start = d("2023-06-01")
    built = SessionCalendar("XNYS", start)
    stale = tmp_path / "calendars" / "XNYS-2023-06-01-xcals0-built2000-01-01.json"
    get_calendar.cache_clear()
    first = get_calendar("XNYS", start, tmp_path)
    (path,) = (tmp_path / "calendars").glob("*.json")
    stale.write_text("{}")
    stamp = path.name.split("-built")[0]
    stale_same = tmp_path / "calendars" / f"{stamp}-built2000-01-01.json"
    stale_same.write_text("{}")

    def no_build(*_: object) -> None:
        raise AssertionError("built instead of read back")

    monkeypatch.setattr(SessionCalendar, "__init__", no_build)
    get_calendar.cache_clear()
    again = get_calendar("XNYS", start, tmp_path)
    for cal in (first, again):
        assert cal.sessions == built.sessions and cal.tz == built.tz
        assert [cal.hours(x) for x in cal.sessions] == [built.hours(x) for x in built.sessions]
    # Thanksgiving Friday 2024 closes at 13:00 New York time
    assert again.hours(d("2024-11-29"))[1] == dt.datetime(2024, 11, 29, 13, 0, tzinfo=ET)
    assert again.non_session_weekdays(d("2024-01-01"), d("2024-12-31")) == [
        d(x)
        for x in (
            "2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27",
            "2024-06-19", "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25",
        )
    ]  # fmt: skip
    monkeypatch.undo()
    path.write_text('{"exchange": "XNYS"')  # damaged: rebuilt and rewritten
    get_calendar.cache_clear()
    assert get_calendar("XNYS", start, tmp_path).sessions == built.sessions
    assert len(json.loads(path.read_text())["sessions"]) == len(built.sessions)
    assert not stale_same.exists() and stale.exists()  # only this calendar's older builds go
    get_calendar.cache_clear()
