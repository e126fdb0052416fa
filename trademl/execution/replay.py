"""Historical paper replay: a broker that fills a past session's orders at the next session's
prices, so the daily loop can run over history and leave a blotter, positions and P&L that
reconcile with the backtest.

Conventions (those of `trademl.backtest.engine`, lag 1):

- Fills. Orders decided at session d's close fill at the calendar's next session t at exactly
  that bar's open (``price="open"``, the default) or close. A limit order fills there when the
  price is at or better than its limit, else it expires unfilled (no intraday path is
  assumed). An order whose symbol has no valid price at t is refused (``rejected``, nothing
  recorded) with a message naming both sessions and the symbol: the position is held, as the
  engine holds a name without an execution price.
- Sizing. The book is sized as the backtest sizes it: weights are fractions of the constant
  capital C and turn into shares at the fill price (`ReplayBroker.sizing_prices`) through the
  same planner (`plan_orders`): a notional order for w·C dollars at t's open, rounded toward
  zero to whole lots. P&L is not reinvested (the engine sweeps it to cash): the account's
  equity is C + cumulative P&L, but orders are sized on C (`ReplayBroker.capital`).
- P&L of session t (dollars): shares held before t's fills × (fill price − previous close) +
  shares after × (close − fill price); marks carry forward along open → close → next open.
  Costs of t's fills are priced per name on its total traded shares with the decision
  session's ADV and σ (`cost_breakdown`, auction fills as configured); borrow is charged on
  shorts at t's close by dollar-ADV tier of t's risk row; cash earns on C − net exposure at
  the previous close.
- Reconciliation. The engine, run with the same capital, costs and lag 1 on the weights the
  filled shares imply (w̃[d, j] = shares of j after t's fills × fill price / C), gives the
  replay's daily P&L to float precision (`backtest_on_fills` + `reconcile`). Against the
  engine on the target weights themselves the only difference is share rounding: per name
  and session the held shares differ from w·C/price by less than e = lot + min_notional/price,
  which bounds each session's P&L difference (`rounding_bound` derives it).

State lives in one folder, every file written atomically: ``replay.json`` (settings, the
booked session, holdings, marks, cumulative P&L), ``orders/<session>.json`` (the orders
decided at a session with their fills) and ``pnl.parquet`` (one row per booked session).
Sessions must be replayed in order; re-opening the latest session is idempotent. The
accounting is `trademl.execution.replay_book`; the daily loop and the reconciliation are
`trademl.execution.replay_run`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from trademl.costs import CostModel
from trademl.data.calendar import SessionCalendar
from trademl.data.sources import BarSource
from trademl.execution.brokers import Account, BrokerError, BrokerOrder, SubmitResult, result_for
from trademl.execution.orders import Order
from trademl.execution.replay_book import (
    PNL_COLUMNS,
    PNL_SCHEMA,
    ReplayParams,
    book_session,
    valid_price,
)
from trademl.io import write_bytes_atomic

__all__ = ["PNL_COLUMNS", "ReplayBroker", "ReplayParams"]

_STATE = "replay.json"
_VERSION = 1


class ReplayBroker:
    """A `Broker` over history: fills at the next session's prices, state in `folder`.

    Opened for a decision ``session``, it first books every session up to it (fills, P&L,
    marks) and then accepts that session's orders; `positions` are the holdings at the
    session's close, before its own orders, so re-running the session plans the same orders
    and gets ``already_present``. With ``session=None`` it is a read-only view whose
    positions include the latest session's fills (for the morning blotter).

    ``risk`` maps symbol → (ADV in shares, daily σ) known at the session's close: costs of
    its fills and the borrow tiers of the session use it (missing: as the engine treats NaN).
    """

    name = "replay"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        source: BarSource | None = None,
        calendar: SessionCalendar | None = None,
        session: dt.date | None = None,
        risk: Mapping[str, tuple[float, float]] | None = None,
        params: ReplayParams | None = None,
        costs: CostModel | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._source, self._cal = source, calendar
        self._risk = {s: (float(a), float(v)) for s, (a, v) in (risk or {}).items()}
        state = self._load_state()
        want = json.loads(
            json.dumps(
                {
                    "params": dataclasses.asdict(params or ReplayParams()),
                    "costs": dataclasses.asdict(costs or CostModel()),
                }
            )
        )
        if state is None:
            state = {
                "version": _VERSION,
                **want,
                "first": None,
                "as_of": None,
                "booked": None,
                "held": {},
                "marks": {},
                "cum": 0.0,
            }
        elif (params is not None and state["params"] != want["params"]) or (
            costs is not None and state["costs"] != want["costs"]
        ):
            raise BrokerError(
                f"replay folder {self.folder} was started with {state['params']} and costs "
                f"{state['costs']}; now {want['params']} and {want['costs']}: keep the settings "
                "or replay into a new folder"
            )
        self._state = state
        self.params = ReplayParams(**state["params"])
        c = dict(state["costs"])
        self.costs = CostModel(**{**c, "borrow_bps_tiers": tuple(c["borrow_bps_tiers"])})
        self._bars: dict[dt.date, dict[str, tuple[float, float]]] = {}
        self._view = session is None
        if session is not None:
            self._open(session)
        self._orders = self._read_orders(self._state["as_of"])

    def __repr__(self) -> str:
        return f"ReplayBroker(folder={self.folder}, as_of={self.as_of}, booked={self.booked})"

    # -- state -------------------------------------------------------------------------
    @property
    def capital(self) -> float:
        """The book's constant capital C: weights are fractions of it (the engine's sizing)."""
        return self.params.capital

    @property
    def as_of(self) -> dt.date | None:
        """The latest decision session the replay was opened for."""
        a = self._state["as_of"]
        return None if a is None else dt.date.fromisoformat(a)

    @property
    def booked(self) -> dt.date | None:
        """The last session whose fills and P&L are booked."""
        b = self._state["booked"]
        return None if b is None else dt.date.fromisoformat(b)

    def _load_state(self) -> dict | None:
        path = self.folder / _STATE
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        if state.get("version") != _VERSION:
            raise BrokerError(f"{path}: unknown replay state version {state.get('version')}")
        return state

    def _orders_path(self, session: str) -> Path:
        return self.folder / "orders" / f"{session}.json"

    def _read_orders(self, session: str | None) -> dict[str, dict]:
        if session is None or not self._orders_path(session).exists():
            return {}
        return {r["client_order_id"]: r for r in json.loads(self._orders_path(session).read_text())}

    def _need(self) -> tuple[BarSource, SessionCalendar]:
        if self._source is None or self._cal is None:
            raise BrokerError("the replay needs the data source and the calendar to open a session")
        return self._source, self._cal

    # -- opening a session: book everything up to it ----------------------------------------
    def _open(self, session: dt.date) -> None:
        source, cal = self._need()
        cal.index(session)  # ValueError unless a session
        as_of = self.as_of
        if as_of is not None and session < as_of:
            raise BrokerError(
                f"replay folder {self.folder} is at session {as_of}; session {session} is "
                "earlier: replay sessions in order, or start a new folder"
            )
        start = session if self.booked is None else cal.next_session(self.booked)
        try:
            fill_day = cal.next_session(session)
        except ValueError:
            fill_day = session
        frame = source.load(min(start, session), fill_day)
        for d, sym, o, c in frame.select("date", "symbol", "open", "close").iter_rows():
            self._bars.setdefault(d, {})[sym] = (o, c)
        if as_of == session:
            return
        pending = self._read_orders(self._state["as_of"])
        rows = []
        for t in cal.sessions_in_range(start, session):
            fills = [r for r in pending.values() if r["fill_session"] == t.isoformat()]
            row, self._state["held"] = book_session(
                t,
                held=self._state["held"],
                marks=self._state["marks"],
                bars=self._bars.get(t, {}),
                fills=fills,
                risk=self._risk if t == session else {},
                params=self.params,
                costs=self.costs,
            )
            self._state["cum"] += row["net"]
            row["equity"] = self.params.capital + self._state["cum"]
            rows.append(row)
        self._state.update(
            as_of=session.isoformat(),
            booked=session.isoformat(),
            first=self._state["first"] or session.isoformat(),
        )
        old = self.pnl().filter(pl.col("date") < rows[0]["date"]) if rows else self.pnl()
        new = pl.concat([old, pl.DataFrame(rows, schema=PNL_SCHEMA)])
        buf = io.BytesIO()
        new.write_parquet(buf)
        write_bytes_atomic(self.folder / "pnl.parquet", buf.getvalue())  # rows first, then state
        self._save_state()

    def _save_state(self) -> None:
        text = json.dumps(self._state, sort_keys=True, indent=1)
        write_bytes_atomic(self.folder / _STATE, text.encode())

    # -- the Broker protocol ------------------------------------------------------------
    def account(self) -> Account:
        """Equity C + cumulative P&L booked so far; cash is equity less the holdings' value."""
        equity = self.params.capital + self._state["cum"]
        value = sum(q * self._state["marks"][s] for s, q in self._state["held"].items())
        return Account(equity=equity, cash=equity - value, buying_power=None)

    def positions(self) -> dict[str, float]:
        """Shares held at the open session's close; in a view, also after its orders' fills."""
        out = dict(self._state["held"])
        if self._view:
            for r in self._orders.values():
                if r["status"] == "filled":
                    q = float(r["filled_qty"]) * (1 if r["side"] == "buy" else -1)
                    out[r["symbol"]] = out.get(r["symbol"], 0.0) + q
        return {s: q for s, q in sorted(out.items()) if q}

    def session_bars(self, session: dt.date) -> dict[str, tuple[float, float]]:
        """symbol → (open, close) of a session the open replay loaded (empty: none)."""
        return dict(self._bars.get(session, {}))

    def sizing_prices(self, fallback: Mapping[str, float] | None = None) -> dict[str, float]:
        """symbol → the price the open session's orders fill at (the next session's bar), for
        sizing as the engine does; where that bar is missing, the session's close (or
        `fallback`), and the order will be refused at submission."""
        _, cal = self._need()
        nxt = self._bars.get(cal.next_session(self.as_of), {}) if self.as_of else {}
        col = 0 if self.params.price == "open" else 1
        out = {**self._state["marks"], **(fallback or {})}
        out.update({s: v[col] for s, v in nxt.items() if valid_price(v[col])})
        return out

    def submit(self, order: Order) -> SubmitResult:
        """Fill at the next session's price (or refuse, saying why); idempotent per id."""
        existing = self._orders.get(order.client_order_id)
        if existing is not None:
            return result_for(order, "already_present", broker_order=_as_broker_order(existing))
        if self._view or self.as_of != order.session:
            raise BrokerError(
                f"order {order.client_order_id} is for session {order.session} but the replay "
                f"is open for {self.as_of}: open the replay for {order.session} first"
            )
        _, cal = self._need()
        t = cal.next_session(order.session)
        bar = self._bars.get(t, {})
        price = bar.get(order.symbol, (None, None))[0 if self.params.price == "open" else 1]
        if not valid_price(price):
            why = (
                f"the data has no bars at all for {t}: replay only sessions before the data's "
                f"last one, or add bars for {t}"
                if not bar
                else f"the data lacks a valid {self.params.price} for {order.symbol} on {t}: "
                "the order is not filled and the position is held, as the backtest holds it"
            )
            reason = (
                f"replay: session {order.session} {order.symbol}: no {self.params.price} price "
                f"on {t}, the next session, when this order would fill; {why}"
            )
            return result_for(order, "rejected", reason=reason)
        lim = order.limit_price
        fills = lim is None or (price <= lim if order.side == "buy" else price >= lim)
        adv, sigma = self._risk.get(order.symbol, (math.nan, math.nan))
        rec = {
            "client_order_id": order.client_order_id,
            "session": order.session.isoformat(),
            "fill_session": t.isoformat(),
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "order_type": order.order_type,
            "limit_price": lim,
            "status": "filled" if fills else "expired",
            "filled_qty": order.qty if fills else 0,
            "price": price if fills else None,
            "adv": adv if math.isfinite(adv) else None,
            "sigma": sigma if math.isfinite(sigma) else None,
        }
        self._orders[order.client_order_id] = rec
        data = json.dumps(sorted(self._orders.values(), key=lambda r: r["client_order_id"]))
        write_bytes_atomic(self._orders_path(order.session.isoformat()), data.encode())
        note = f"replay: {rec['status']} at the {t} {self.params.price}"
        return result_for(order, "submitted", reason=note, broker_order=_as_broker_order(rec))

    def list_orders(self) -> list[BrokerOrder]:
        """The orders of the open (or, in a view, the latest) session."""
        return [_as_broker_order(r) for r in self._orders.values()]

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """Any replayed order, found by the session in its id."""
        rec = self._orders.get(client_order_id)
        parts = client_order_id.split("-")
        if rec is None and len(parts) > 1 and len(parts[1]) == 8 and parts[1].isdigit():
            day = dt.datetime.strptime(parts[1], "%Y%m%d").date().isoformat()
            rec = self._read_orders(day).get(client_order_id)
        return None if rec is None else _as_broker_order(rec)

    # -- what the replay produced -------------------------------------------------------
    def pnl(self) -> pl.DataFrame:
        """One row per booked session, in dollars (`PNL_COLUMNS`, net, equity, exposures)."""
        path = self.folder / "pnl.parquet"
        if not path.exists():
            return pl.DataFrame(schema=PNL_SCHEMA)
        booked = self.booked
        frame = pl.read_parquet(path)
        return frame.filter(pl.col("date") <= booked) if booked else frame.clear()

    def blotter(self) -> pl.DataFrame:
        """Every recorded order with its fill: one row per order, by session then id."""
        schema = {
            "session": pl.Date,
            "fill_session": pl.Date,
            "client_order_id": pl.String,
            "symbol": pl.String,
            "side": pl.String,
            "qty": pl.Int64,
            "order_type": pl.String,
            "status": pl.String,
            "filled_qty": pl.Int64,
            "price": pl.Float64,
        }
        rows = []
        folder = self.folder / "orders"
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            rows += json.loads(path.read_text())
        text = {k: pl.String if t == pl.Date else t for k, t in schema.items()}
        frame = pl.DataFrame([{k: r[k] for k in schema} for r in rows], schema=text)
        dates = [pl.col(k).str.to_date() for k, t in schema.items() if t == pl.Date]
        return frame.with_columns(dates).sort("session", "client_order_id")


def _as_broker_order(rec: Mapping[str, object]) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=str(rec["client_order_id"]),
        symbol=str(rec["symbol"]),
        side=str(rec["side"]),
        qty=float(rec["qty"]),  # type: ignore[arg-type]
        filled_qty=float(rec["filled_qty"]),  # type: ignore[arg-type]
        filled_avg_price=rec["price"],  # type: ignore[arg-type]
        status=str(rec["status"]),
        order_type=str(rec["order_type"]),
        limit_price=rec["limit_price"],  # type: ignore[arg-type]
    )
