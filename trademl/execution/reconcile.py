"""Reconciliation: intended orders vs the broker's orders, fills and positions → a blotter.

The blotter is what a person reads in the morning: one row per planned order (plus rows for
anything the broker shows that the plan does not explain), with a plain-words mismatch reason
and an empty ``mismatch`` when all is as intended.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import polars as pl

from trademl.execution.brokers import DEAD_STATUSES, Broker, BrokerOrder, SubmitResult
from trademl.execution.orders import Order

BLOTTER_SCHEMA: dict[str, pl.DataType] = {
    "session": pl.Date(),
    "client_order_id": pl.Utf8(),
    "symbol": pl.Utf8(),
    "side": pl.Utf8(),
    "qty_intended": pl.Int64(),
    "qty_at_broker": pl.Float64(),
    "qty_filled": pl.Float64(),
    "avg_price": pl.Float64(),
    "status": pl.Utf8(),
    "submission": pl.Utf8(),
    "position_before": pl.Float64(),
    "position_after": pl.Float64(),
    "position_expected": pl.Float64(),
    "mismatch": pl.Utf8(),
    "note": pl.Utf8(),
}
_OPEN_HINT = "still working"
_TOL = 1e-6


def _n(x: float) -> str:
    """A share count without a spurious '.0'."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _fill_problem(o: Order, bo: BrokerOrder) -> list[str]:
    out = []
    if bo.side != o.side:
        out.append(f"side at broker is {bo.side}, planned {o.side}")
    if abs(bo.qty - o.qty) > _TOL:
        out.append(f"qty at broker {_n(bo.qty)} ≠ planned {o.qty}")
    if bo.status == "dry_run":
        return out
    filled, want = bo.filled_qty, bo.qty
    if bo.status == "filled" and abs(filled - want) <= _TOL:
        return out
    if bo.status in DEAD_STATUSES:
        out.append(f"{bo.status} by broker: filled {_n(filled)} of {_n(want)}")
    elif bo.status == "done_for_day" or bo.status == "filled":
        out.append(f"not fully filled: {_n(filled)} of {_n(want)} ({bo.status})")
    else:
        out.append(f"{_OPEN_HINT} ({bo.status}): filled {_n(filled)} of {_n(want)}")
    return out


def reconcile(
    intended: Sequence[Order],
    broker_orders: Iterable[BrokerOrder],
    *,
    positions_before: Mapping[str, float],
    positions_after: Mapping[str, float] | None = None,
    results: Sequence[SubmitResult] = (),
    session: dt.date | None = None,
    prefix: str | None = None,
) -> pl.DataFrame:
    """Blotter of a session (schema `BLOTTER_SCHEMA`), sorted by symbol then id.

    Parameters
    ----------
    intended
        The planned orders (parents or slices, as they were submitted).
    broker_orders
        The broker's orders; those of this session's id stem but not planned are flagged.
    positions_before, positions_after
        Shares per symbol before the session's orders and now (None: not checked).
    results
        Submission outcomes, to tell halted/rejected orders from missing ones.
    session, prefix
        Identify the session's ids when ``intended`` is empty (default: taken from it).
    """
    by_id = {bo.client_order_id: bo for bo in broker_orders}
    res = {r.client_order_id: r for r in results}
    stems = {f"{o.prefix}-{o.session:%Y%m%d}-" for o in intended}
    if session is not None:
        stems.add(f"{prefix or 'tml'}-{session:%Y%m%d}-")
    planned_ids = {o.client_order_id for o in intended}
    extra = [
        bo
        for cid, bo in sorted(by_id.items())
        if cid not in planned_ids and any(cid.startswith(s) for s in stems)
    ]
    filled: dict[str, float] = defaultdict(float)
    for bo in [*(by_id[o.client_order_id] for o in intended if o.client_order_id in by_id), *extra]:
        filled[bo.symbol] += bo.filled_qty if bo.side == "buy" else -bo.filled_qty
    day = session or (intended[0].session if intended else None)

    rows: list[dict[str, object]] = []
    for o in intended:
        bo = by_id.get(o.client_order_id)
        r = res.get(o.client_order_id)
        problems: list[str] = []
        note = r.reason if r else ""
        if bo is None:
            if r is not None and r.status == "halted":
                pass  # deliberate: the note says why
            elif r is not None and r.status == "rejected":
                problems.append("rejected, not at broker")
            else:
                problems.append("missing at broker")
        else:
            problems += _fill_problem(o, bo)
        rows.append(
            _row(o.session, o.client_order_id, o.symbol, o.side, o.qty, bo, r, problems, note)
        )
    for bo in extra:
        harmless = bo.status in DEAD_STATUSES and bo.filled_qty == 0
        problems = [] if harmless else ["not in the plan"]
        note = f"earlier order of this session, not in the plan ({bo.status})" if harmless else ""
        rows.append(_row(day, bo.client_order_id, bo.symbol, bo.side, 0, bo, None, problems, note))

    seen = {str(row["symbol"]) for row in rows}
    if positions_after is not None:
        for sym in sorted((set(positions_before) | set(positions_after)) - seen):
            b, a = positions_before.get(sym, 0.0), positions_after.get(sym, 0.0)
            if abs(a - b) > _TOL:
                rows.append(
                    _row(
                        day,
                        "",
                        sym,
                        "",
                        0,
                        None,
                        None,
                        [f"position changed {_n(b)} → {_n(a)} without an order"],
                        "",
                        status="no_order",
                    )
                )
    for row in rows:
        sym = str(row["symbol"])
        before = float(positions_before.get(sym, 0.0))
        expected = before + filled.get(sym, 0.0)
        row["position_before"], row["position_expected"] = before, expected
        if positions_after is None:
            row["position_after"] = None
        else:
            after = float(positions_after.get(sym, 0.0))
            row["position_after"] = after
            if abs(after - expected) > _TOL and row["status"] != "no_order":
                row["mismatch"] = "; ".join(
                    x
                    for x in (
                        str(row["mismatch"]),
                        f"position {_n(after)} ≠ expected {_n(expected)} "
                        f"(before {_n(before)} + fills {_n(filled.get(sym, 0.0))})",
                    )
                    if x
                )
    frame = pl.DataFrame(rows, schema=BLOTTER_SCHEMA)
    return frame.sort(["symbol", "client_order_id"])


def _row(
    session: dt.date | None,
    cid: str,
    symbol: str,
    side: str,
    qty: int,
    bo: BrokerOrder | None,
    r: SubmitResult | None,
    problems: list[str],
    note: str,
    status: str | None = None,
) -> dict[str, object]:
    return {
        "session": session,
        "client_order_id": cid,
        "symbol": symbol,
        "side": side,
        "qty_intended": qty,
        "qty_at_broker": bo.qty if bo else None,
        "qty_filled": bo.filled_qty if bo else 0.0,
        "avg_price": bo.filled_avg_price if bo else None,
        "status": status or (bo.status if bo else (r.status if r else "not_sent")),
        "submission": r.status if r else "",
        "mismatch": "; ".join(problems),
        "note": note,
    }


def reconcile_broker(
    broker: Broker,
    intended: Sequence[Order],
    *,
    positions_before: Mapping[str, float],
    results: Sequence[SubmitResult] = (),
    session: dt.date | None = None,
) -> pl.DataFrame:
    """`reconcile` against a live broker: its order list (plus look-ups) and positions now."""
    orders = {bo.client_order_id: bo for bo in broker.list_orders()}
    for o in intended:
        if o.client_order_id not in orders:
            found = broker.get_order(o.client_order_id)
            if found is not None:
                orders[o.client_order_id] = found
    return reconcile(
        intended,
        orders.values(),
        positions_before=positions_before,
        positions_after=broker.positions(),
        results=results,
        session=session,
    )


def blotter_summary(frame: pl.DataFrame) -> dict[str, float]:
    """Counts for a report or asset metadata: orders, fully filled, mismatches, filled notional."""
    filled_notional = frame.select(
        (pl.col("qty_filled") * pl.col("avg_price").fill_null(0.0)).sum()
    ).item()
    return {
        "orders": float((frame["client_order_id"] != "").sum()),
        "filled": float((frame["status"] == "filled").sum()),
        "mismatches": float((frame["mismatch"] != "").sum()),
        "filled_notional": float(filled_notional or 0.0),
    }


def write_blotter(frame: pl.DataFrame, directory: str | os.PathLike[str], session: dt.date) -> Path:
    """Write ``<dir>/date=YYYY-MM-DD/blotter.parquet`` and ``.csv`` atomically (parquet path)."""
    folder = Path(directory) / f"date={session.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "blotter.parquet"
    for target, write in ((out, frame.write_parquet), (folder / "blotter.csv", frame.write_csv)):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out
