"""End to end against a local fake of Alpaca's API: plan → submit (idempotent) → fills → blotter.

Also: tripwires send nothing, live trading needs both opt-ins, and the key/secret never reach
logs, reprs, exception texts or files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trademl.execution.fake_alpaca import FakeAlpaca
from trademl.execution.alpaca_broker import (
    LIVE_URL,
    AlpacaBroker,
    LiveTradingRefused,
    resolve_endpoint,
)
from trademl.execution.brokers import BrokerError, submit_all
from trademl.execution.orders import Order, PlanParams, plan_orders
from trademl.execution.reconcile import reconcile_broker, write_blotter
from trademl.execution.tripwires import SessionFacts, TripwireLimits, check_tripwires

KEY = "PKFAKE7Q2W9ZK4M1X8VB"
SECRET = "fAkE+secret/9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
SESSION = dt.date(2024, 3, 5)
PRICES = {"AAPL": 190.0, "MSFT": 400.0, "SPY": 500.0}
TARGETS = {"AAPL": 0.19, "SPY": 0.25}  # MSFT is held and not targeted -> closed


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)


@pytest.fixture
def fake(creds: None) -> Iterator[FakeAlpaca]:
    with FakeAlpaca(key=KEY, secret=SECRET, cash=96_000.0, positions={"MSFT": (10, 400.0)}) as f:
        yield f


def _broker(fake: FakeAlpaca, tmp_path: Path) -> AlpacaBroker:
    return AlpacaBroker(base_url=fake.url, journal_dir=tmp_path / "journal")


def _plan(broker: AlpacaBroker, **kw: object) -> list[Order]:
    return plan_orders(
        TARGETS,
        broker.positions(),
        PRICES,
        broker.account().equity,
        session=SESSION,
        params=PlanParams(**kw),  # type: ignore[arg-type]
    )


def test_plan_submitted_three_times_leaves_one_order_per_symbol(
    fake: FakeAlpaca, tmp_path: Path
) -> None:
    broker = _broker(fake, tmp_path)
    acct = broker.account()
    assert acct.equity == pytest.approx(100_000.0) and acct.cash == pytest.approx(96_000.0)
    assert broker.positions() == {"MSFT": 10.0}
    orders = _plan(broker)
    # 19,000 / 190 = 100 AAPL; 25,000 / 500 = 50 SPY; MSFT 10 closed; sells first.
    assert [(o.symbol, o.side, o.qty) for o in orders] == [
        ("MSFT", "sell", 10),
        ("AAPL", "buy", 100),
        ("SPY", "buy", 50),
    ]
    statuses = [[r.status for r in submit_all(broker, orders)] for _ in range(3)]
    assert statuses == [["submitted"] * 3, ["already_present"] * 3, ["already_present"] * 3]
    assert fake.posts() == 3
    # Submitting directly (skipping submit_all's look-up) hits Alpaca's 422 duplicate answer.
    direct = [broker.submit(o) for o in orders]
    assert [r.status for r in direct] == ["already_present"] * 3
    assert direct[1].broker_order is not None and direct[1].broker_order.qty == 100
    assert fake.posts() == 6  # three more POSTs arrived ...
    per_symbol = sorted(o["symbol"] for o in fake.orders.values())
    assert per_symbol == ["AAPL", "MSFT", "SPY"]  # ... and still one order per symbol
    assert broker.get_order(orders[0].client_order_id).status == "accepted"  # type: ignore[union-attr]
    assert broker.get_order("tml-20240305-NOPE-b-0000000000") is None
    journal = (tmp_path / "journal" / AlpacaBroker.JOURNAL_FILE).read_text().splitlines()
    assert len(journal) == 6


def test_reconciliation_after_simulated_fills(fake: FakeAlpaca, tmp_path: Path) -> None:
    broker = _broker(fake, tmp_path)
    before = broker.positions()
    orders = _plan(broker, order_type="limit", limit_offset_bps=20)
    results = submit_all(broker, orders)
    msft, aapl, spy = orders
    assert aapl.limit_price == pytest.approx(190.38)  # 190 * 1.002 on the cent
    fake.fill(msft.client_order_id, 10, 401.0)
    fake.fill(aapl.client_order_id, 60, 190.0)
    fake.fill(aapl.client_order_id, 40, 190.5)
    fake.fill(spy.client_order_id, 20, 499.0)
    blotter = reconcile_broker(broker, orders, positions_before=before, results=results)
    rows = {r["symbol"]: r for r in blotter.iter_rows(named=True)}
    assert rows["MSFT"]["status"] == "filled" and rows["MSFT"]["mismatch"] == ""
    assert rows["MSFT"]["position_before"] == 10 and rows["MSFT"]["position_after"] == 0
    assert rows["AAPL"]["avg_price"] == pytest.approx((60 * 190.0 + 40 * 190.5) / 100)
    assert rows["AAPL"]["position_after"] == 100 and rows["AAPL"]["mismatch"] == ""
    assert rows["SPY"]["status"] == "partially_filled"
    assert rows["SPY"]["mismatch"] == "still working (partially_filled): filled 20 of 50"
    assert rows["SPY"]["position_after"] == rows["SPY"]["position_expected"] == 20
    fake.cancel(spy.client_order_id)
    later = reconcile_broker(broker, orders, positions_before=before, results=results)
    spy_row = later.filter(later["symbol"] == "SPY").row(0, named=True)
    assert spy_row["mismatch"] == "canceled by broker: filled 20 of 50"
    write_blotter(later, tmp_path / "blotter", SESSION)


def test_lost_response_is_recovered_without_a_second_order(
    fake: FakeAlpaca, tmp_path: Path
) -> None:
    broker = _broker(fake, tmp_path)
    orders = _plan(broker)
    fake.lose_response_for.add(orders[1].client_order_id)
    fake.reject_symbols["SPY"] = (403, "insufficient buying power")
    results = submit_all(broker, orders)
    assert [r.status for r in results] == ["submitted", "submitted", "rejected"]
    assert "order found at broker" in results[1].reason
    assert results[2].reason == "HTTP 403: insufficient buying power"
    assert sorted(fake.orders) == sorted(o.client_order_id for o in orders[:2])


def test_a_replan_does_not_stack_on_a_working_order(fake: FakeAlpaca, tmp_path: Path) -> None:
    broker = _broker(fake, tmp_path)
    orders = _plan(broker)
    submit_all(broker, orders)
    bigger = plan_orders(
        TARGETS, broker.positions(), PRICES, 120_000.0, session=SESSION
    )  # AAPL 120, SPY 60: new ids for the same symbols and session
    results = submit_all(broker, bigger)
    assert {r.symbol: r.status for r in results} == {
        "MSFT": "already_present",
        "AAPL": "rejected",
        "SPY": "rejected",
    }
    assert fake.posts() == 3


@pytest.mark.parametrize(
    "change",
    [
        {"qc_status": "RED"},
        {"turnover": 0.9},
        {"gross": 1.5},
        {"latest_bar_date": dt.date(2024, 3, 4)},
        {"drift": True},
    ],
)
def test_each_tripwire_sends_nothing(
    fake: FakeAlpaca, tmp_path: Path, change: dict[str, object]
) -> None:
    broker = _broker(fake, tmp_path)
    orders = _plan(broker)
    facts = SessionFacts(
        session=SESSION, qc_status="GREEN", turnover=0.3, gross=0.44, latest_bar_date=SESSION
    )
    reasons = check_tripwires(dataclasses.replace(facts, **change), TripwireLimits())  # type: ignore[arg-type]
    assert len(reasons) == 1
    seen = len(fake.requests)
    results = submit_all(broker, orders, halt_reasons=reasons)
    assert {r.status for r in results} == {"halted"}
    assert len(fake.requests) == seen  # the broker was not even asked
    assert fake.orders == {}


def test_live_trading_needs_both_opt_ins(creds: None) -> None:
    with pytest.raises(LiveTradingRefused, match="allow_live=True"):
        AlpacaBroker(paper=False)
    with pytest.raises(LiveTradingRefused, match="live endpoint"):
        AlpacaBroker(paper=False, allow_live=True)
    with pytest.raises(LiveTradingRefused, match="live endpoint"):
        AlpacaBroker(paper=False, allow_live=True, base_url="http://127.0.0.1:9")
    with pytest.raises(LiveTradingRefused, match="LIVE endpoint but paper=True"):
        AlpacaBroker(base_url=LIVE_URL, allow_live=True)
    with pytest.raises(ValueError, match="credentials"):
        resolve_endpoint("https://user:pw@paper-api.alpaca.markets", paper=True, allow_live=False)
    assert resolve_endpoint(None, paper=True, allow_live=False) == (
        "https://paper-api.alpaca.markets",
        False,
    )
    live = AlpacaBroker(paper=False, allow_live=True, base_url=LIVE_URL + "/")  # no network yet
    assert live.is_live and live.base_url == LIVE_URL
    assert KEY not in repr(live) and SECRET not in repr(live)


def _leaks(text: str) -> bool:
    return KEY in text or SECRET in text


def test_credentials_never_leak(
    fake: FakeAlpaca,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = _broker(fake, tmp_path)
    orders = _plan(broker)
    fake.reject_symbols["SPY"] = (422, "qty must be > 0")
    submit_all(broker, orders)
    submit_all(broker, orders)
    fake.fill(orders[0].client_order_id, 10, 400.0)
    write_blotter(
        reconcile_broker(broker, orders, positions_before={"MSFT": 10.0}), tmp_path, SESSION
    )
    errors: list[BaseException] = []
    # The server echoes the key id in its 401 message: the client must scrub it.
    with FakeAlpaca(key="PKOTHERKEY0000000000", secret="other-secret-value") as other:
        wrong = AlpacaBroker(base_url=other.url, journal_dir=tmp_path)
        for call in (wrong.account, wrong.positions, wrong.list_orders):
            with pytest.raises(BrokerError, match="HTTP 401") as info:
                call()
            errors.append(info.value)
        with pytest.raises(BrokerError, match="HTTP 401") as info:
            wrong.get_order("x")
        errors.append(info.value)
        bad = wrong.submit(orders[1])
        assert bad.status == "rejected" and "***" in bad.reason
    assert "access key *** verification failed" in str(errors[0])
    assert errors[0].__cause__ is None and errors[0].__context__ is None
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(broker)
    monkeypatch.setenv("APCA_API_KEY_ID", "")
    with pytest.raises(BrokerError, match="APCA_API_KEY_ID is not set") as missing:
        AlpacaBroker(base_url=fake.url)
    errors.append(missing.value)
    with pytest.raises(ValueError, match="NAME of an environment variable") as pasted:
        AlpacaBroker(base_url=fake.url, key_env=KEY.lower())
    errors.append(pasted.value)

    texts = [repr(broker), repr(wrong), bad.reason, caplog.text, *capsys.readouterr()]
    texts += ["".join(traceback.format_exception(e)) + repr(e) for e in errors]
    assert "-> submitted" in caplog.text  # the capture did see the broker's log lines
    assert not [t for t in texts if _leaks(t)]
    assert KEY.lower() not in str(pasted.value)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == AlpacaBroker.JOURNAL_FILE for p in files)
    leaked = [
        p for p in files if KEY.encode() in p.read_bytes() or SECRET.encode() in p.read_bytes()
    ]
    assert leaked == []
