"""DryRunBroker, idempotent submission with conflict detection, and the reconciliation blotter."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from trademl.execution.brokers import (
    Broker,
    BrokerOrder,
    DryRunBroker,
    SubmitResult,
    parent_id,
    results_frame,
    submit_all,
)
from trademl.execution.orders import Order, plan_orders
from trademl.execution.reconcile import (
    BLOTTER_SCHEMA,
    blotter_summary,
    reconcile,
    reconcile_broker,
    write_blotter,
)
from trademl.execution.schedule import slice_order

SESSION = dt.date(2024, 3, 5)
PRICES = {"AAA": 50.0, "BBB": 20.0, "CCC": 10.0}


def _plan(equity: float = 100_000.0) -> list[Order]:
    return plan_orders({"AAA": 0.1, "BBB": 0.05, "CCC": 0.02}, {}, PRICES, equity, session=SESSION)


def test_dry_run_records_and_is_idempotent_across_restarts(tmp_path: Path) -> None:
    broker = DryRunBroker(equity=50_000.0, positions={"AAA": 5}, record_dir=tmp_path)
    assert isinstance(broker, Broker)
    assert broker.account().equity == 50_000.0 and broker.positions() == {"AAA": 5.0}
    orders = _plan()
    first = submit_all(broker, orders)
    assert [r.status for r in first] == ["submitted"] * 3
    lines = (tmp_path / DryRunBroker.RECORD_FILE).read_text().splitlines()
    assert len(lines) == 3
    restarted = DryRunBroker(record_dir=tmp_path)
    again = submit_all(restarted, orders)
    assert [r.status for r in again] == ["already_present"] * 3
    assert restarted.submit(orders[0]).status == "already_present"
    assert len((tmp_path / DryRunBroker.RECORD_FILE).read_text().splitlines()) == 3
    frame = results_frame(again)
    assert frame["status"].to_list() == ["already_present"] * 3


def test_dry_run_ledger_fills_earlier_sessions_only(tmp_path: Path) -> None:
    orders = _plan()  # buys of AAA 200, BBB 250, CCC 200 shares on SESSION
    submit_all(DryRunBroker(record_dir=tmp_path, fills_before=SESSION), orders)
    same_day = DryRunBroker(record_dir=tmp_path, fills_before=SESSION)
    assert same_day.positions() == {}  # re-running the session plans from the same book
    assert (
        plan_orders(
            {"AAA": 0.1, "BBB": 0.05, "CCC": 0.02},
            same_day.positions(),
            PRICES,
            100_000.0,
            session=SESSION,
        )
        == orders
    )
    nxt = DryRunBroker(
        record_dir=tmp_path, positions={"AAA": 5}, fills_before=SESSION + dt.timedelta(days=1)
    )
    assert nxt.positions() == {"AAA": 205.0, "BBB": 250.0, "CCC": 200.0}
    # the next session's plan only trades the difference: AAA to 0.1 is already held
    moved = plan_orders(
        {"AAA": 0.1, "BBB": 0.0},
        nxt.positions(),
        PRICES,
        100_000.0,
        session=SESSION + dt.timedelta(days=1),
    )
    assert {(o.symbol, o.side, o.qty) for o in moved} == {
        ("AAA", "sell", 5),
        ("BBB", "sell", 250),
        ("CCC", "sell", 200),
    }


def test_replan_conflicting_with_a_live_order_is_rejected() -> None:
    broker = DryRunBroker()
    submit_all(broker, _plan(100_000.0))
    replanned = _plan(110_000.0)  # same symbols, bigger quantities -> new ids
    results = submit_all(broker, replanned)
    assert [r.status for r in results] == ["rejected"] * 3
    assert "conflict" in results[0].reason and "AAA" in results[0].reason
    assert len(broker.list_orders()) == 3


def test_slices_of_one_parent_do_not_conflict() -> None:
    (parent,) = plan_orders({"AAA": 0.1}, {}, PRICES, 100_000.0, session=SESSION)
    start = dt.datetime(2024, 3, 5, 14, 30)
    kids = slice_order(parent, start=start, end=start + dt.timedelta(hours=3), n_slices=3)
    assert all(parent_id(k.order.client_order_id) == parent.client_order_id for k in kids)
    broker = DryRunBroker()
    for kid in kids:  # sent one at a time, as a scheduler would
        assert [r.status for r in submit_all(broker, [kid.order])] == ["submitted"]
    assert sum(o.qty for o in broker.list_orders()) == parent.qty


def _bo(o: Order, status: str, filled: float, price: float | None = None) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=o.client_order_id,
        symbol=o.symbol,
        side=o.side,
        qty=float(o.qty),
        filled_qty=filled,
        filled_avg_price=price,
        status=status,
    )


def test_blotter_reports_fills_and_mismatches() -> None:
    a, b, c = (o for o in _plan())  # AAA buy 200, BBB buy 250, CCC buy 200
    assert (a.qty, b.qty, c.qty) == (200, 250, 200)
    stray = dataclasses.replace(
        a, symbol="AAA", qty=7, client_order_id="tml-20240305-AAA-b-0000000000"
    )
    broker_orders = [
        _bo(a, "filled", 200, 50.1),
        _bo(b, "partially_filled", 100, 20.0),
        _bo(stray, "filled", 7, 50.0),
    ]
    before = {"AAA": 10.0, "DDD": 5.0}
    after = {"AAA": 217.0, "BBB": 90.0, "DDD": 0.0}
    frame = reconcile([a, b, c], broker_orders, positions_before=before, positions_after=after)
    assert frame.schema == pl.Schema(BLOTTER_SCHEMA)
    rows = {(r["symbol"], r["qty_intended"]): r for r in frame.iter_rows(named=True)}
    ok = rows[("AAA", 200)]
    assert ok["status"] == "filled" and ok["avg_price"] == pytest.approx(50.1)
    assert ok["position_expected"] == 217.0 and ok["mismatch"] == ""  # 10 + 200 + stray 7
    assert rows[("AAA", 0)]["mismatch"] == "not in the plan"
    part = rows[("BBB", 250)]["mismatch"]
    assert "still working (partially_filled): filled 100 of 250" in part
    assert "position 90 ≠ expected 100 (before 0 + fills 100)" in part
    assert rows[("CCC", 200)]["mismatch"] == "missing at broker"
    assert rows[("DDD", 0)]["status"] == "no_order"
    assert "position changed 5 → 0 without an order" in rows[("DDD", 0)]["mismatch"]
    summary = blotter_summary(frame)
    assert summary["orders"] == 4 and summary["filled"] == 2 and summary["mismatches"] == 4
    assert summary["filled_notional"] == pytest.approx(200 * 50.1 + 100 * 20.0 + 7 * 50.0)


def test_blotter_dead_orders_and_halts() -> None:
    a, b, c = _plan()
    halted = SubmitResult(c.client_order_id, "CCC", "buy", c.qty, "halted", "halted: QC is RED")
    rejected = SubmitResult(b.client_order_id, "BBB", "buy", b.qty, "rejected", "HTTP 403: no bp")
    frame = reconcile(
        [a, b, c],
        [_bo(a, "canceled", 30, 50.0)],
        positions_before={},
        positions_after={"AAA": 30.0},
        results=[halted, rejected],
    )
    rows = {r["symbol"]: r for r in frame.iter_rows(named=True)}
    assert rows["AAA"]["mismatch"] == "canceled by broker: filled 30 of 200"
    assert rows["BBB"]["mismatch"] == "rejected, not at broker"
    assert rows["BBB"]["note"] == "HTTP 403: no bp"
    assert rows["CCC"]["status"] == "halted" and rows["CCC"]["mismatch"] == ""
    assert rows["CCC"]["note"] == "halted: QC is RED"


def test_reconcile_dry_run_and_write(tmp_path: Path) -> None:
    broker = DryRunBroker(positions={"AAA": 10})
    orders = _plan()
    results = submit_all(broker, orders)
    frame = reconcile_broker(broker, orders, positions_before={"AAA": 10}, results=results)
    assert frame["status"].to_list() == ["dry_run"] * 3
    assert frame["mismatch"].to_list() == [""] * 3
    path = write_blotter(frame, tmp_path, SESSION)
    assert path == tmp_path / "date=2024-03-05" / "blotter.parquet"
    assert pl.read_parquet(path).equals(frame)
    assert (path.parent / "blotter.csv").exists()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
