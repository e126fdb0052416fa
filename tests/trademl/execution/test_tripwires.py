"""Tripwires: each fact out of bounds gives one reason with its numbers; any reason halts all."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from trademl.data.quality import Status
from trademl.execution.brokers import DryRunBroker, submit_all
from trademl.execution.orders import Order
from trademl.execution.tripwires import SessionFacts, TripwireLimits, check_tripwires

SESSION = dt.date(2024, 3, 5)
LIMITS = TripwireLimits(max_turnover=0.5, max_gross=1.0, max_bar_lag_days=0)
CLEAN = SessionFacts(
    session=SESSION, qc_status="GREEN", turnover=0.3, gross=0.95, latest_bar_date=SESSION
)

CASES = {
    "qc_red": ({"qc_status": "RED"}, ["QC is RED"]),
    "turnover": ({"turnover": 0.62}, ["turnover 62.00%", "limit 50.00%"]),
    "gross": ({"gross": 1.35}, ["gross exposure 135.00%", "cap 100.00%"]),
    "stale": (
        {"latest_bar_date": dt.date(2024, 3, 1)},
        ["stale", "2024-03-01", "4 day(s) old", "allowed 0"],
    ),
    "drift": ({"drift": True, "drift_detail": "PSI 0.31 > 0.25"}, ["drift", "PSI 0.31 > 0.25"]),
    "future_bar": ({"latest_bar_date": dt.date(2024, 3, 6)}, ["after the session"]),
    "unknown_bar": ({"latest_bar_date": None}, ["latest bar is unknown"]),
    "nan_turnover": ({"turnover": float("nan")}, ["turnover is nan"]),
    "bad_qc": ({"qc_status": "BLUE"}, ["'BLUE'"]),
}


def test_clean_session_has_no_reasons() -> None:
    assert check_tripwires(CLEAN, LIMITS) == []
    yellow = dataclasses.replace(CLEAN, qc_status=Status.YELLOW)
    assert check_tripwires(yellow, LIMITS) == []  # a warning unless halt_on_yellow
    at_limits = dataclasses.replace(CLEAN, turnover=0.5, gross=1.0)
    assert check_tripwires(at_limits, LIMITS) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_tripwire_gives_one_sentence_with_numbers(case: str) -> None:
    change, needles = CASES[case]
    reasons = check_tripwires(dataclasses.replace(CLEAN, **change), LIMITS)  # type: ignore[arg-type]
    assert len(reasons) == 1, reasons
    assert str(SESSION) in reasons[0]
    for needle in needles:
        assert needle in reasons[0]


def test_yellow_halts_when_asked_and_enum_status_is_understood() -> None:
    yellow = dataclasses.replace(CLEAN, qc_status=Status.YELLOW)
    strict = dataclasses.replace(LIMITS, halt_on_yellow=True)
    assert len(check_tripwires(yellow, strict)) == 1
    assert len(check_tripwires(dataclasses.replace(CLEAN, qc_status=Status.RED), LIMITS)) == 1


def test_all_tripwires_at_once() -> None:
    bad = SessionFacts(
        session=SESSION,
        qc_status="RED",
        turnover=2.0,
        gross=3.0,
        latest_bar_date=dt.date(2024, 2, 1),
        drift=True,
    )
    assert len(check_tripwires(bad, LIMITS)) == 5


def test_a_reason_means_nothing_is_sent(tmp_path: object) -> None:
    orders = [
        Order(session=SESSION, symbol=s, side="buy", qty=10, ref_price=10.0) for s in ("A", "B")
    ]
    broker = DryRunBroker(record_dir=tmp_path)  # type: ignore[arg-type]
    reasons = check_tripwires(dataclasses.replace(CLEAN, turnover=0.9), LIMITS)
    results = submit_all(broker, orders, halt_reasons=reasons)
    assert [r.status for r in results] == ["halted", "halted"]
    assert all("turnover 90.00%" in r.reason for r in results)
    assert broker.list_orders() == []
    assert not (tmp_path / DryRunBroker.RECORD_FILE).exists()  # type: ignore[operator]
