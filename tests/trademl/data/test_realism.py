"""Data-realism checks: each warning fires on crafted bars with a plain reason, and the
synthetic market (realistic by construction) raises none of them."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.trademl.data.test_quality import CAL, SESSIONS, TARGET, clean_bars, edit, only, qc_one
from trademl.config import QCConfig
from trademl.data.quality import Status, run_qc
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec

REALISM = (
    "volume_realistic",
    "open_realistic",
    "range_realistic",
    "prices_adjusted",
    "universe_sufficient",
)


def test_constant_volume_is_flagged():
    bars = clean_bars().with_columns(pl.lit(1e6).alias("volume"))
    r = only(qc_one(bars), "volume_realistic", Status.YELLOW)
    assert "volume is constant" in r.message and "impact" in r.message


def test_opens_equal_to_the_previous_close_are_flagged():
    bars = (
        clean_bars()
        .sort("symbol", "date")
        .with_columns(
            pl.col("close").shift(1).over("symbol").fill_null(pl.col("open")).alias("open")
        )
    )
    bars = bars.with_columns(
        pl.max_horizontal("high", "open").alias("high"),
        pl.min_horizontal("low", "open").alias("low"),
    )
    r = only(qc_one(bars), "open_realistic", Status.YELLOW)
    assert "execution lag" in r.message


@pytest.mark.parametrize(("width", "expected"), [(0.0, "high equals low"), (0.002, "same ±0.20%")])
def test_degenerate_or_fixed_width_ranges_are_flagged(width: float, expected: str):
    c = pl.col("close")  # the open at the close too, so the range is exactly ±width
    bars = clean_bars().with_columns(
        c.alias("open"), (c * (1 + width)).alias("high"), (c * (1 - width)).alias("low")
    )
    report = qc_one(bars)
    r = report.results["range_realistic"]
    assert r.status == Status.YELLOW and expected in r.message, r


def test_a_split_sized_jump_says_the_prices_look_unadjusted():
    halved = pl.col("date") == TARGET  # S03 closed at 25.3 the session before: 12.65 is half
    bars = edit(
        clean_bars(),
        halved & (pl.col("symbol") == "S03"),
        open=12.65,
        high=12.7,
        low=12.6,
        close=12.65,
    )
    r = only(qc_one(bars), "prices_adjusted", Status.YELLOW)
    assert "S03 ×0.50 (a 2:1 split?)" in r.message and "adjusted" in r.message
    # a crash of −45% is not a split ratio, and stays silent
    crashed = edit(
        clean_bars(),
        halved & (pl.col("symbol") == "S03"),
        open=14.0,
        high=14.2,
        low=13.8,
        close=14.0,
    )
    assert qc_one(crashed).results["prices_adjusted"].status == Status.GREEN


def test_a_universe_too_small_for_the_bars_reports_the_ic_standard_error():
    bars = clean_bars().filter(pl.col("symbol").is_in(["S00", "S01", "S02", "S03", "S04", "S05"]))
    report = run_qc(bars, SESSIONS, [TARGET], QCConfig(), training=(500, 5))
    r = report[0].results["universe_sufficient"]
    # 6 names: 1/√5 = 0.447 a session; over 100 independent labels ±0.045; 2 SE = 0.089
    assert r.status == Status.YELLOW and "standard error of 0.447" in r.message
    assert "±0.045" in r.message and "below 0.089" in r.message
    assert r.value == pytest.approx(2 / (5 * 100) ** 0.5)
    # the same names over a long enough window are fine (2 SE = 0.045 < 0.05)
    long = run_qc(bars, SESSIONS, [TARGET], QCConfig(), training=(2000, 5))
    assert long[0].results["universe_sufficient"].status == Status.GREEN
    tiny = bars.filter(pl.col("symbol").is_in(["S00", "S01", "S02"]))
    r = run_qc(tiny, SESSIONS, [TARGET], QCConfig())[0].results["universe_sufficient"]
    assert r.status == Status.YELLOW and "no name per leg" in r.message


def test_the_synthetic_market_raises_no_realism_warning():
    spec = SyntheticSpec(n_symbols=100, seed=3, start=dt.date(2023, 1, 3))
    bars = SyntheticMarket(spec, CAL).load(end=dt.date(2025, 3, 31))
    sessions = CAL.sessions_in_range(dt.date(2023, 2, 1), dt.date(2025, 3, 31))
    for q in run_qc(bars, sessions, sessions[25:], QCConfig(), training=(500, 5)):  # 2 years
        assert {n: q.results[n].status for n in REALISM} == dict.fromkeys(REALISM, Status.GREEN)
