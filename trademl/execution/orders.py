"""Order planning: target weights + current positions → lot-rounded, idempotent orders.

Every order carries a deterministic ``client_order_id`` built from the session, the symbol,
the side and a short hash of exactly the fields sent to the broker, so planning the same
session twice yields the same ids and a broker that enforces unique ids never fills twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]

#: Alpaca rejects a client_order_id longer than this.
MAX_CLIENT_ORDER_ID = 48
_SYMBOL_CHARS = 12
_HASH_CHARS = 10
_SAFE = re.compile(r"[^A-Za-z0-9.]")


def _sym_token(symbol: str) -> str:
    """Symbol as it appears in ids: alphanumerics and dots only, at most 12 characters."""
    return _SAFE.sub("_", symbol)[:_SYMBOL_CHARS]


def id_stem(prefix: str, session: dt.date, symbol: str) -> str:
    """The id part shared by every order of one symbol in one session (for conflict checks)."""
    return f"{prefix}-{session:%Y%m%d}-{_sym_token(symbol)}-"


def client_order_id(
    *,
    prefix: str,
    session: dt.date,
    symbol: str,
    side: Side,
    qty: int,
    order_type: OrderType,
    limit_price: float | None,
    time_in_force: str,
    part: int = 0,
) -> str:
    """``<prefix>-<YYYYMMDD>-<SYMBOL>-<b|s>-<hash10>``: same order fields → same id, ≤ 48 chars."""
    content = json.dumps(
        [
            session.isoformat(),
            symbol,
            side,
            int(qty),
            order_type,
            None if limit_price is None else f"{limit_price:.6f}",
            time_in_force,
            int(part),
        ]
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:_HASH_CHARS]
    cid = f"{id_stem(prefix, session, symbol)}{side[0]}-{digest}"
    if len(cid) > MAX_CLIENT_ORDER_ID:
        raise ValueError(
            f"client_order_id {cid!r} is {len(cid)} characters; the limit is {MAX_CLIENT_ORDER_ID}"
            " (shorten the id prefix)"
        )
    return cid


@dataclass(frozen=True, slots=True)
class Order:
    """One parent order for one session; ``client_order_id`` is derived when left empty.

    ``ref_price`` (the price the plan was sized with) is informational and not part of the id:
    a re-plan with a slightly different price but the same quantity must keep its id.
    """

    session: dt.date
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = "market"
    limit_price: float | None = None
    time_in_force: str = "day"
    ref_price: float = math.nan
    part: int = 0
    prefix: str = "tml"
    client_order_id: str = field(default="")

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise ValueError(
                f"order {self.symbol}: side must be 'buy' or 'sell', got {self.side!r}"
            )
        if not isinstance(self.qty, int) or isinstance(self.qty, bool) or self.qty <= 0:
            raise ValueError(f"order {self.symbol}: qty must be a positive int, got {self.qty!r}")
        if self.order_type not in ("market", "limit"):
            raise ValueError(f"order {self.symbol}: order_type must be market or limit")
        if (self.order_type == "limit") != (self.limit_price is not None):
            raise ValueError(f"order {self.symbol}: a limit price goes with (only) a limit order")
        if self.limit_price is not None and not (self.limit_price > 0):
            raise ValueError(f"order {self.symbol}: limit_price must be > 0")
        if not self.client_order_id:
            cid = client_order_id(
                prefix=self.prefix,
                session=self.session,
                symbol=self.symbol,
                side=self.side,
                qty=self.qty,
                order_type=self.order_type,
                limit_price=self.limit_price,
                time_in_force=self.time_in_force,
                part=self.part,
            )
            object.__setattr__(self, "client_order_id", cid)
        elif len(self.client_order_id) > MAX_CLIENT_ORDER_ID:
            raise ValueError(
                f"order {self.symbol}: client_order_id is longer than {MAX_CLIENT_ORDER_ID}"
            )

    @property
    def signed_qty(self) -> int:
        """+qty for a buy, -qty for a sell."""
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True, slots=True)
class PlanParams:
    """How weights become orders.

    Parameters
    ----------
    lot_size
        Target positions are rounded toward zero to a multiple of this many shares.
    min_notional
        Orders worth less than this (qty × price, in account currency) are skipped.
    order_type
        ``market`` or ``limit`` day orders; a limit is the reference price moved
        ``limit_offset_bps`` against us (buy above, sell below), rounded to the tick.
    split_flips
        A trade that crosses zero (long → short) becomes a closing and an opening order,
        because brokers (Alpaca among them) refuse to flip a position in one order.
    id_prefix
        First token of every client_order_id (a strategy tag, ≤ 8 characters).
    """

    lot_size: int = 1
    min_notional: float = 1.0
    order_type: OrderType = "market"
    limit_offset_bps: float = 10.0
    time_in_force: str = "day"
    split_flips: bool = True
    id_prefix: str = "tml"

    def __post_init__(self) -> None:
        if self.lot_size < 1:
            raise ValueError(f"lot_size must be >= 1, got {self.lot_size}")
        if not (self.min_notional >= 0):
            raise ValueError(f"min_notional must be >= 0, got {self.min_notional}")
        if not re.fullmatch(r"[A-Za-z0-9]{1,8}", self.id_prefix):
            raise ValueError(f"id_prefix must be 1-8 letters/digits, got {self.id_prefix!r}")


def _tick(price: float) -> float:
    """US equity tick: $0.01 at or above $1, $0.0001 below."""
    return 0.01 if price >= 1.0 else 0.0001


def limit_price_for(side: Side, price: float, offset_bps: float) -> float:
    """Reference price moved ``offset_bps`` against us, rounded to the tick (away from us)."""
    raw = price * (1 + offset_bps / 1e4) if side == "buy" else price * (1 - offset_bps / 1e4)
    tick = _tick(price)
    ticks = raw / tick
    n = math.ceil(ticks - 1e-9) if side == "buy" else math.floor(ticks + 1e-9)
    return round(max(n, 1) * tick, 4)


def _target_shares(weight: float, equity: float, price: float, lot: int) -> int:
    """Signed target position, rounded toward zero to whole lots."""
    raw = weight * equity / price
    lots = math.floor(abs(raw) / lot + 1e-9)
    return int(math.copysign(lots * lot, raw)) if lots else 0


def _check_number(what: str, symbol: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} for {symbol!r} is {value}; expected a finite number")
    return value


def plan_orders(
    targets: Mapping[str, float],
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    *,
    session: dt.date,
    params: PlanParams | None = None,
) -> list[Order]:
    """Orders that move ``positions`` (shares) to ``targets`` (weights of ``equity``).

    Symbols held but absent from ``targets`` are closed. Sells come first (they free cash),
    then buys; within a side symbols are sorted, so the result is deterministic.

    Parameters
    ----------
    targets
        symbol → target weight (signed; negative is short).
    positions
        symbol → current shares (signed).
    prices
        symbol → reference price; required for every symbol with a target or a position.
    equity
        Account equity the weights are fractions of.
    session
        The session the orders are for; part of every client_order_id.
    """
    p = params or PlanParams()
    equity = float(equity)
    if not (math.isfinite(equity) and equity > 0):
        raise ValueError(f"session {session}: account equity must be > 0, got {equity}")
    symbols = sorted({s for s, w in targets.items() if w != 0} | set(positions))
    orders: list[Order] = []
    for sym in symbols:
        weight = _check_number("target weight", sym, targets.get(sym, 0.0))
        current = _check_number("position", sym, positions.get(sym, 0.0))
        if weight == 0 and current == 0:
            continue
        if sym not in prices:
            raise ValueError(f"session {session}: no price for {sym!r} (target or position held)")
        price = _check_number("price", sym, prices[sym])
        if price <= 0:
            raise ValueError(f"session {session}: price for {sym!r} is {price}; expected > 0")
        target = _target_shares(weight, equity, price, p.lot_size) if weight else 0
        delta = target - current
        if abs(delta) < 1e-9:
            continue
        legs = _legs(current, target, delta) if p.split_flips else [delta]
        for part, leg in enumerate(legs):
            qty = math.floor(abs(leg) + 1e-9)  # whole shares; a fractional remainder stays
            if qty == 0 or qty * price < p.min_notional:
                continue
            side: Side = "buy" if leg > 0 else "sell"
            limit = (
                limit_price_for(side, price, p.limit_offset_bps)
                if p.order_type == "limit"
                else None
            )
            orders.append(
                Order(
                    session=session,
                    symbol=sym,
                    side=side,
                    qty=qty,
                    order_type=p.order_type,
                    limit_price=limit,
                    time_in_force=p.time_in_force,
                    ref_price=price,
                    part=part,
                    prefix=p.id_prefix,
                )
            )
    return sort_orders(orders)


def _legs(current: float, target: float, delta: float) -> list[float]:
    """One trade, or close-then-open when the trade crosses zero."""
    if current * target < 0:
        return [-current, target]
    return [delta]


def sort_orders(orders: Iterable[Order]) -> list[Order]:
    """Sells before buys, then by symbol, then by part: a deterministic submission order."""
    return sorted(orders, key=lambda o: (o.side != "sell", o.symbol, o.part, o.client_order_id))


def planned_turnover(orders: Sequence[Order], equity: float) -> float:
    """One-way turnover of the plan: Σ qty × reference price / equity."""
    return sum(o.qty * o.ref_price for o in orders) / float(equity)


def gross_exposure(weights: Mapping[str, float]) -> float:
    """Σ |w| of the target weights."""
    return float(sum(abs(w) for w in weights.values()))


def orders_frame(orders: Sequence[Order]) -> pl.DataFrame:
    """The plan as a polars frame (one row per order) for storage and reports."""
    schema = {
        "session": pl.Date,
        "client_order_id": pl.Utf8,
        "symbol": pl.Utf8,
        "side": pl.Utf8,
        "qty": pl.Int64,
        "order_type": pl.Utf8,
        "limit_price": pl.Float64,
        "time_in_force": pl.Utf8,
        "ref_price": pl.Float64,
        "notional": pl.Float64,
    }
    rows = [
        {
            "session": o.session,
            "client_order_id": o.client_order_id,
            "symbol": o.symbol,
            "side": o.side,
            "qty": o.qty,
            "order_type": o.order_type,
            "limit_price": o.limit_price,
            "time_in_force": o.time_in_force,
            "ref_price": o.ref_price,
            "notional": o.qty * o.ref_price,
        }
        for o in orders
    ]
    return pl.DataFrame(rows, schema=schema)
