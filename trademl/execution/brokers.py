"""The broker interface, a dry-run broker, and idempotent submission of a plan.

A broker identifies orders by ``client_order_id``; submitting an id it already holds returns
the existing order (``already_present``) instead of trading again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import polars as pl

from trademl.execution.orders import Order, id_stem

logger = logging.getLogger(__name__)

SubmitStatus = Literal["submitted", "already_present", "rejected", "halted"]
#: Broker order statuses after which the order can no longer trade.
DEAD_STATUSES = frozenset({"canceled", "expired", "rejected", "replaced"})
#: Statuses meaning the order is finished (no more fills coming).
FINAL_STATUSES = DEAD_STATUSES | {"filled", "done_for_day"}


class BrokerError(RuntimeError):
    """A broker call failed; the message never contains credentials."""


@dataclass(frozen=True, slots=True)
class Account:
    """Account values in account currency."""

    equity: float
    cash: float
    buying_power: float | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An order as the broker knows it."""

    client_order_id: str
    symbol: str
    side: str
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    status: str
    order_type: str = "market"
    limit_price: float | None = None
    broker_order_id: str | None = None
    submitted_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What happened to one order of a plan."""

    client_order_id: str
    symbol: str
    side: str
    qty: int
    status: SubmitStatus
    reason: str = ""
    broker_order: BrokerOrder | None = None


@runtime_checkable
class Broker(Protocol):
    """What execution needs from a broker."""

    name: str

    def account(self) -> Account:
        """Equity, cash and buying power now."""
        ...

    def positions(self) -> dict[str, float]:
        """symbol → signed shares held."""
        ...

    def submit(self, order: Order) -> SubmitResult:
        """Send one order unless its client_order_id is already known (then already_present)."""
        ...

    def list_orders(self) -> list[BrokerOrder]:
        """Recent orders, every status."""
        ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client_order_id, or None."""
        ...


def _record(order: Order) -> dict[str, object]:
    d = dataclasses.asdict(order)
    d["session"] = order.session.isoformat()
    return d


class DryRunBroker:
    """Records what would be sent and sends nothing.

    With ``record_dir`` each order is appended to ``record_dir/dry_run_orders.jsonl`` and the
    file is read back on start, so re-running a session is idempotent here too. With
    ``fills_before`` set, recorded orders of sessions before that date count as filled (a
    paper ledger), so positions carry from one session's dry run to the next; orders of that
    session itself never move positions, so re-running it plans the same orders.
    """

    name = "dry_run"
    RECORD_FILE = "dry_run_orders.jsonl"

    def __init__(
        self,
        *,
        equity: float = 100_000.0,
        cash: float | None = None,
        positions: Mapping[str, float] | None = None,
        record_dir: str | os.PathLike[str] | None = None,
        fills_before: dt.date | None = None,
    ) -> None:
        self._account = Account(equity=float(equity), cash=float(equity if cash is None else cash))
        self._positions = {s: float(q) for s, q in (positions or {}).items() if q}
        self._path = Path(record_dir) / self.RECORD_FILE if record_dir is not None else None
        self._orders: dict[str, BrokerOrder] = {}
        if self._path is not None and self._path.exists():
            for line in self._path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self._orders[rec["client_order_id"]] = self._as_broker_order(rec)
                    if fills_before is not None and (
                        dt.date.fromisoformat(str(rec["session"])) < fills_before
                    ):
                        sign = 1.0 if rec["side"] == "buy" else -1.0
                        sym = str(rec["symbol"])
                        held = self._positions.get(sym, 0.0) + sign * float(rec["qty"])
                        self._positions[sym] = held
            self._positions = {s: q for s, q in self._positions.items() if q}

    def __repr__(self) -> str:
        return f"DryRunBroker(equity={self._account.equity}, record_file={self._path})"

    @staticmethod
    def _as_broker_order(rec: Mapping[str, object]) -> BrokerOrder:
        return BrokerOrder(
            client_order_id=str(rec["client_order_id"]),
            symbol=str(rec["symbol"]),
            side=str(rec["side"]),
            qty=float(rec["qty"]),  # type: ignore[arg-type]
            filled_qty=0.0,
            filled_avg_price=None,
            status="dry_run",
            order_type=str(rec["order_type"]),
            limit_price=rec.get("limit_price"),  # type: ignore[arg-type]
        )

    def account(self) -> Account:
        return self._account

    def positions(self) -> dict[str, float]:
        return dict(self._positions)

    def submit(self, order: Order) -> SubmitResult:
        existing = self._orders.get(order.client_order_id)
        if existing is not None:
            return result_for(order, "already_present", broker_order=existing)
        rec = _record(order)
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
        bo = self._as_broker_order(rec)
        self._orders[order.client_order_id] = bo
        logger.info(
            "dry run: would %s %d %s (%s)",
            order.side,
            order.qty,
            order.symbol,
            order.client_order_id,
        )
        return result_for(order, "submitted", reason="dry run: nothing sent", broker_order=bo)

    def list_orders(self) -> list[BrokerOrder]:
        return list(self._orders.values())

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return self._orders.get(client_order_id)


def result_for(
    order: Order, status: SubmitStatus, reason: str = "", broker_order: BrokerOrder | None = None
) -> SubmitResult:
    """A SubmitResult describing ``order``."""
    return SubmitResult(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        status=status,
        reason=reason,
        broker_order=broker_order,
    )


def parent_id(client_order_id: str) -> str:
    """The planner id an order belongs to: a slice ``<parent>-NN`` maps to ``<parent>``."""
    parts = client_order_id.split("-")
    return "-".join(parts[:5]) if len(parts) == 6 and parts[5].isdigit() else client_order_id


def submit_all(
    broker: Broker, orders: Sequence[Order], *, halt_reasons: Sequence[str] = ()
) -> list[SubmitResult]:
    """Submit a plan idempotently; with any halt reason nothing is sent at all.

    An order is ``rejected`` without being sent when the broker already holds a live or
    filled order for the same symbol and session under a *different* plan (another id with
    the same ``prefix-date-SYMBOL-`` stem that is not a slice of the same parent): a re-plan
    must not stack on an earlier one.
    """
    if halt_reasons:
        reason = "halted: " + "; ".join(halt_reasons)
        logger.warning("no orders sent for %d planned: %s", len(orders), reason)
        return [result_for(o, "halted", reason=reason) for o in orders]
    existing = {o.client_order_id: o for o in broker.list_orders()}
    plan_ids = {o.client_order_id for o in orders}
    results = []
    for order in orders:
        known = existing.get(order.client_order_id)
        if known is not None:
            results.append(result_for(order, "already_present", broker_order=known))
            continue
        stem = id_stem(order.prefix, order.session, order.symbol)
        mine = parent_id(order.client_order_id)
        clash = sorted(
            cid
            for cid, bo in existing.items()
            if cid.startswith(stem)
            and parent_id(cid) != mine
            and cid not in plan_ids
            and bo.status not in DEAD_STATUSES
        )
        if clash:
            results.append(
                result_for(
                    order,
                    "rejected",
                    reason=f"conflict: broker already holds {', '.join(clash)} for "
                    f"{order.symbol} in session {order.session}; reconcile or cancel first",
                )
            )
            continue
        result = broker.submit(order)
        if result.broker_order is not None:
            existing[order.client_order_id] = result.broker_order
        results.append(result)
    counts = {s: sum(r.status == s for r in results) for s in ("submitted", "already_present")}
    rejected = sum(r.status == "rejected" for r in results)
    logger.info(
        "%s: %d submitted, %d already present, %d rejected",
        broker.name,
        counts["submitted"],
        counts["already_present"],
        rejected,
    )
    return results


def results_frame(results: Sequence[SubmitResult]) -> pl.DataFrame:
    """Submission outcomes as a polars frame."""
    schema = {
        "client_order_id": pl.Utf8,
        "symbol": pl.Utf8,
        "side": pl.Utf8,
        "qty": pl.Int64,
        "status": pl.Utf8,
        "reason": pl.Utf8,
        "broker_status": pl.Utf8,
    }
    rows = [
        {
            "client_order_id": r.client_order_id,
            "symbol": r.symbol,
            "side": r.side,
            "qty": r.qty,
            "status": r.status,
            "reason": r.reason,
            "broker_status": r.broker_order.status if r.broker_order else None,
        }
        for r in results
    ]
    return pl.DataFrame(rows, schema=schema)
