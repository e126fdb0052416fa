"""Bars quality control: every rule in RULES on crafted sessions, thresholds at their edges."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from trademl.config import QCConfig
from trademl.data.calendar import get_calendar
from trademl.data.quality import RULES, RuleResult, SessionQC, Status, qc_frame, run_qc, worst

CAL = get_calendar("XNYS", dt.date(2020, 1, 2))
# 25 sessions ending on a Monday, so the weekend before the target is inside the window.
SESSIONS = CAL.sessions_in_range(dt.date(2025, 2, 3), dt.date(2025, 3, 10))[-25:]
TARGET = SESSIONS[-1]
N = 20
SYMBOLS = [f"S{i:02d}" for i in range(N)]
CFG = QCConfig()


def clean_bars(sessions: list[dt.date] = SESSIONS, symbols: list[str] = SYMBOLS) -> pl.DataFrame:
    rows = []
    for t, d in enumerate(sessions):
        for j, s in enumerate(symbols):
            c = 20.0 + j + 0.1 * t
            volume = 1000.0 * (j + 1) * (1.0 + 0.1 * ((t + j) % 3))  # volume varies, as traded
            rows.append((d, s, c - 0.05, c + 0.3, c - 0.3, c, volume))
    return pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        },
        orient="row",
    )


def qc(bars: pl.DataFrame, targets: list[dt.date] | None = None, **cfg) -> list[SessionQC]:
    return run_qc(bars, SESSIONS, targets or [TARGET], QCConfig(**cfg))


def qc_one(bars: pl.DataFrame, **cfg) -> SessionQC:
    return qc(bars, **cfg)[0]


def at(d: dt.date, *symbols: str) -> pl.Expr:
    return (pl.col("date") == d) & pl.col("symbol").is_in(list(symbols))


def edit(bars: pl.DataFrame, where: pl.Expr, **values) -> pl.DataFrame:
    return bars.with_columns(
        pl.when(where).then(pl.lit(v, dtype=bars.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def only(report: SessionQC, rule: str, status: Status) -> RuleResult:
    """`rule` has `status` and every other rule is GREEN."""
    others = {n: r.status for n, r in report.results.items() if n != rule}
    assert set(others.values()) == {Status.GREEN}, others
    result = report.results[rule]
    assert result.status == status, result
    assert report.status == status
    return result


def test_clean_sessions_are_green_on_every_rule() -> None:
    report = qc(clean_bars(), targets=SESSIONS[-5:])
    assert [q.session for q in report] == SESSIONS[-5:]
    for q in report:
        assert list(q.results) == list(RULES)
        assert q.status == Status.GREEN and q.reasons() == []


def test_first_session_without_history_is_green() -> None:
    bars = clean_bars()
    report = run_qc(bars, SESSIONS[:1], SESSIONS[:1], CFG)
    assert report[0].status == Status.GREEN
    assert "first session" in report[0].results["coverage"].message
    # Also as the first session of a longer window.
    assert qc(bars, targets=[SESSIONS[0]])[0].status == Status.GREEN


@pytest.mark.parametrize(
    ("n_missing", "status"),
    [(0, Status.GREEN), (1, Status.YELLOW), (4, Status.YELLOW), (5, Status.RED), (20, Status.RED)],
)
def test_coverage_thresholds(n_missing: int, status: Status) -> None:
    """20 active names: 19/20 = 95% < 97% → YELLOW; 16/20 = 80% is not < 80%; 15/20 → RED."""
    gone = SYMBOLS[:n_missing]
    report = qc_one(clean_bars().filter(~at(TARGET, *gone)))
    result = only(report, "coverage", status)
    if 0 < n_missing < N:
        assert result.value == pytest.approx((N - n_missing) / N)
        assert f"missing {', '.join(gone[:5])}" in result.message
    if n_missing == N:
        assert "no bars" in result.message


def test_coverage_counts_only_names_active_in_the_lookback() -> None:
    # S19 stopped trading 15 sessions ago (beyond universe_lookback=10): not missing today.
    bars = clean_bars().filter(~((pl.col("symbol") == "S19") & (pl.col("date") > SESSIONS[-16])))
    assert qc_one(bars).results["coverage"].status == Status.GREEN
    # With a longer universe lookback it is missing again.
    assert qc_one(bars, universe_lookback=20).results["coverage"].status == Status.YELLOW


@pytest.mark.parametrize("value", [float("nan"), 0.0, -3.0, None])
@pytest.mark.parametrize("col", ["open", "close"])
def test_invalid_price_is_red_and_named(col: str, value: float | None) -> None:
    report = qc_one(edit(clean_bars(), at(TARGET, "S07"), **{col: value}))
    result = report.results["prices_valid"]
    assert result.status == Status.RED and report.status == Status.RED
    assert "S07" in result.message and result.value == 1


def test_high_below_low_is_red() -> None:
    report = qc_one(edit(clean_bars(), at(TARGET, "S03", "S11"), high=10.0, low=50.0))
    result = only(report, "ohlc_consistent", Status.RED)
    assert "S03" in result.message and "S11" in result.message and result.value == 2


def test_close_above_high_is_red() -> None:
    bars = clean_bars()
    hi = bars.filter(at(TARGET, "S05"))["high"].item()
    result = only(
        qc_one(edit(bars, at(TARGET, "S05"), close=hi + 0.01)), "ohlc_consistent", Status.RED
    )
    assert "S05" in result.message


def test_open_below_low_is_red() -> None:
    bars = clean_bars()
    lo = bars.filter(at(TARGET, "S06"))["low"].item()
    result = only(
        qc_one(edit(bars, at(TARGET, "S06"), open=lo - 0.01)), "ohlc_consistent", Status.RED
    )
    assert "S06" in result.message


def test_bar_on_its_bounds_is_fine() -> None:
    bars = clean_bars()
    bars = edit(bars, at(TARGET, "S01"), open=21.0, high=21.0, low=21.0, close=21.0)
    assert qc_one(bars).status == Status.GREEN


def test_duplicate_key_is_red_and_named() -> None:
    bars = clean_bars()
    bars = pl.concat([bars, bars.filter(at(TARGET, "S09"))])
    result = only(qc_one(bars), "unique_keys", Status.RED)
    assert "S09" in result.message
    # A duplicate on another session of the window does not taint the target.
    bars = clean_bars()
    bars = pl.concat([bars, bars.filter(at(SESSIONS[-3], "S09"))])
    assert qc_one(bars).results["unique_keys"].status == Status.GREEN
    assert qc(bars, targets=[SESSIONS[-3]])[0].results["unique_keys"].status == Status.RED


@pytest.mark.parametrize(
    ("n_zero", "status"), [(1, Status.YELLOW), (2, Status.RED)]
)  # 1/20 = 5% is not above zero_volume_red = 5%; 2/20 = 10% is
def test_zero_volume(n_zero: int, status: Status) -> None:
    names = SYMBOLS[:n_zero]
    result = only(
        qc_one(edit(clean_bars(), at(TARGET, *names), volume=0.0)), "volume_valid", status
    )
    assert result.value == pytest.approx(n_zero / N)
    assert all(s in result.message for s in names)


@pytest.mark.parametrize("value", [-1.0, float("nan"), None])
def test_negative_or_missing_volume_is_red(value: float | None) -> None:
    result = only(
        qc_one(edit(clean_bars(), at(TARGET, "S12"), volume=value)), "volume_valid", Status.RED
    )
    assert "S12" in result.message


def test_integer_volume_is_accepted() -> None:
    bars = clean_bars().with_columns(pl.col("volume").cast(pl.Int64))
    assert qc_one(bars).status == Status.GREEN
    assert qc_one(edit(bars, at(TARGET, "S01"), volume=0)).results["volume_valid"].status == (
        Status.YELLOW
    )


def test_history_gap_of_one_name_is_yellow() -> None:
    bars = clean_bars().filter(~at(SESSIONS[-3], "S04") & ~at(SESSIONS[-2], "S04"))
    result = only(qc_one(bars), "history_gaps", Status.YELLOW)
    assert "S04 (2 missing)" in result.message
    assert result.value == pytest.approx(1 / N)


@pytest.mark.parametrize(("n_names", "status"), [(2, Status.YELLOW), (3, Status.RED)])
def test_history_gaps_of_many_names(n_names: int, status: Status) -> None:
    """2/20 = 10% is not above gap_symbols_red = 10%; 3/20 = 15% is."""
    names = SYMBOLS[-n_names:]
    bars = clean_bars().filter(~at(SESSIONS[-2], *names))
    result = only(qc_one(bars), "history_gaps", status)
    assert all(f"{s} (1 missing)" in result.message for s in names)


def test_gap_older_than_the_lookback_is_not_flagged() -> None:
    # S02 is back today after missing sessions 1..(T-22): last seen 23 sessions ago > 20.
    bars = clean_bars().filter(
        ~((pl.col("symbol") == "S02") & pl.col("date").is_in(SESSIONS[1:-1]))
    )
    report = qc_one(bars)
    assert report.results["history_gaps"].status == Status.GREEN
    assert report.results["coverage"].status == Status.GREEN  # S02 was not active either
    assert qc_one(bars, gap_lookback=24).results["history_gaps"].status == Status.YELLOW


def test_weekend_row_is_red_on_the_next_session() -> None:
    saturday = TARGET - dt.timedelta(days=2)
    assert TARGET.weekday() == 0 and not CAL.is_session(saturday)
    bars = clean_bars()
    bars = pl.concat(
        [bars, bars.filter(at(TARGET, "S08")).with_columns(pl.lit(saturday).alias("date"))]
    )
    friday = SESSIONS[-2]
    report = qc(bars, targets=[friday, TARGET])
    assert report[0].status == Status.GREEN
    result = only(report[1], "on_calendar", Status.RED)
    assert str(saturday) in result.message and result.value == 1


def test_holiday_row_is_red() -> None:
    presidents_day = dt.date(2025, 2, 17)
    assert not CAL.is_session(presidents_day) and presidents_day in CAL.non_session_weekdays(
        SESSIONS[0], TARGET
    )
    bars = clean_bars()
    bars = pl.concat(
        [bars, bars.filter(at(TARGET, "S01")).with_columns(pl.lit(presidents_day).alias("date"))]
    )
    report = qc(bars, targets=[dt.date(2025, 2, 14), dt.date(2025, 2, 18)])
    assert report[0].results["on_calendar"].status == Status.GREEN
    assert report[1].results["on_calendar"].status == Status.RED


def test_targets_must_be_sessions_of_the_window() -> None:
    with pytest.raises(ValueError, match="not sessions"):
        run_qc(clean_bars(), SESSIONS, [TARGET - dt.timedelta(days=1)], CFG)


def test_worst_reasons_and_long_table() -> None:
    assert worst([]) == Status.GREEN
    assert worst([Status.GREEN, Status.RED, Status.YELLOW]) == Status.RED
    assert worst([Status.YELLOW, Status.GREEN]) == Status.YELLOW
    # S00 missed the previous session (coverage YELLOW there, a gap today); S01 traded nothing.
    bars = edit(clean_bars().filter(~at(SESSIONS[-2], "S00")), at(TARGET, "S01"), volume=0.0)
    report = qc(bars, targets=SESSIONS[-2:])
    assert [q.status for q in report] == [Status.YELLOW, Status.YELLOW]
    assert [r.split(":")[0] for r in report[0].reasons()] == ["coverage"]
    reasons = report[1].reasons()
    assert len(reasons) == 2
    assert reasons[0].startswith("volume_valid: ") and "S01" in reasons[0]
    assert reasons[1].startswith("history_gaps: ") and "S00" in reasons[1]
    table = qc_frame(report)
    assert table.columns == ["session", "rule", "status", "value", "message"]
    assert table.height == 2 * len(RULES)
    assert table.filter(pl.col("status") != "GREEN").select("session", "rule").rows() == [
        (SESSIONS[-2], "coverage"),
        (TARGET, "volume_valid"),
        (TARGET, "history_gaps"),
    ]
