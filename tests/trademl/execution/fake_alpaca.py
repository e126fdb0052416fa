"""A local fake of the subset of Alpaca's trading REST API that alpaca-py's TradingClient uses.

`FakeAlpaca` runs a ThreadingHTTPServer on 127.0.0.1 (an OS-chosen port) in a thread; use it
as a context manager, which always shuts the server down. It checks the APCA-API-KEY-ID /
APCA-API-SECRET-KEY headers, stores orders, answers a duplicate client_order_id with HTTP 422
as Alpaca does, and `fill()` simulates executions (updating order, position and cash).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT_ID = "3f2b1c9e-0000-4000-8000-000000000001"
DEAD = {"canceled", "expired", "rejected", "replaced"}
OPEN = {"new", "accepted", "pending_new", "partially_filled", "accepted_for_bidding"}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class FakeAlpaca:
    """State of the fake account plus the server; thread-safe through one lock."""

    def __init__(
        self,
        *,
        key: str,
        secret: str,
        cash: float = 100_000.0,
        positions: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.key, self.secret = key, secret
        self.cash = cash
        # symbol -> (signed qty, average entry price)
        self.positions: dict[str, tuple[float, float]] = dict(positions or {})
        self.prices: dict[str, float] = {s: p for s, (_, p) in self.positions.items()}
        self.orders: dict[str, dict[str, Any]] = {}  # client_order_id -> order JSON
        self.requests: list[tuple[str, str]] = []  # (method, path) received
        self.reject_symbols: dict[str, tuple[int, str]] = {}  # symbol -> (status, message)
        self.lose_response_for: set[str] = set()  # client ids stored, then answered 500
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeAlpaca:
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---- simulation ----------------------------------------------------------------------

    def posts(self) -> int:
        """How many order submissions reached the server."""
        return sum(1 for m, p in self.requests if m == "POST" and p == "/v2/orders")

    def fill(self, client_order_id: str, qty: float, price: float) -> None:
        """Execute ``qty`` more shares of an order at ``price``."""
        with self._lock:
            o = self.orders[client_order_id]
            done = float(o["filled_qty"])
            if done + qty > float(o["qty"]) + 1e-9:
                raise ValueError(f"overfill of {client_order_id}")
            avg = float(o["filled_avg_price"] or 0.0)
            new = done + qty
            o["filled_avg_price"] = _num((avg * done + price * qty) / new)
            o["filled_qty"] = _num(new)
            full = abs(new - float(o["qty"])) < 1e-9
            o["status"] = "filled" if full else "partially_filled"
            o["updated_at"] = _now()
            if full:
                o["filled_at"] = o["updated_at"]
            signed = qty if o["side"] == "buy" else -qty
            held, entry = self.positions.get(o["symbol"], (0.0, price))
            total = held + signed
            if abs(total) < 1e-9:
                self.positions.pop(o["symbol"], None)
            else:
                same_way = held * signed > 0 or held == 0
                entry = (entry * abs(held) + price * qty) / abs(total) if same_way else entry
                self.positions[o["symbol"]] = (total, entry)
            self.prices[o["symbol"]] = price
            self.cash -= signed * price

    def cancel(self, client_order_id: str) -> None:
        with self._lock:
            self.orders[client_order_id]["status"] = "canceled"
            self.orders[client_order_id]["canceled_at"] = _now()

    # ---- JSON shapes that alpaca-py's models parse ---------------------------------------

    def account_json(self) -> dict[str, Any]:
        mv = sum(q * self.prices.get(s, e) for s, (q, e) in self.positions.items())
        equity = self.cash + mv
        return {
            "id": ACCOUNT_ID,
            "account_number": "PA0000FAKE",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": _num(self.cash),
            "equity": _num(equity),
            "last_equity": _num(equity),
            "portfolio_value": _num(equity),
            "buying_power": _num(2 * max(self.cash, 0.0)),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "shorting_enabled": True,
            "multiplier": "2",
            "created_at": "2024-01-02T14:00:00Z",
        }

    def position_json(self, symbol: str, qty: float, entry: float) -> dict[str, Any]:
        price = self.prices.get(symbol, entry)
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": _num(entry),
            "qty": _num(qty),
            "qty_available": _num(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": _num(qty * price),
            "cost_basis": _num(qty * entry),
            "current_price": _num(price),
        }

    def new_order(self, body: dict[str, Any]) -> dict[str, Any]:
        self._counter += 1
        now = _now()
        cid = body.get("client_order_id") or str(uuid.UUID(int=10**6 + self._counter))
        return {
            "id": str(uuid.UUID(int=self._counter)),
            "client_order_id": cid,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, body["symbol"])),
            "symbol": body["symbol"],
            "asset_class": "us_equity",
            "notional": None,
            "qty": _num(float(body["qty"])),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "",
            "order_type": body["type"],
            "type": body["type"],
            "side": body["side"],
            "time_in_force": body["time_in_force"],
            "limit_price": None if body.get("limit_price") is None else str(body["limit_price"]),
            "stop_price": None,
            "status": "accepted",
            "extended_hours": bool(body.get("extended_hours", False)),
            "legs": None,
        }


class _Handler(BaseHTTPRequestHandler):
    state: FakeAlpaca

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        key = self.headers.get("APCA-API-KEY-ID", "")
        secret = self.headers.get("APCA-API-SECRET-KEY", "")
        if key == self.state.key and secret == self.state.secret:
            return True
        # Like some real APIs, echo the key id back: the client must scrub it from errors.
        self._send(401, {"code": 40110000, "message": f"access key {key} verification failed"})
        return False

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        fake = self.state
        with fake._lock:
            fake.requests.append((method, path))
        if not self._authorized():
            return
        with fake._lock:
            if method == "GET" and path == "/v2/account":
                return self._send(200, fake.account_json())
            if method == "GET" and path == "/v2/positions":
                rows = [fake.position_json(s, q, e) for s, (q, e) in sorted(fake.positions.items())]
                return self._send(200, rows)
            if method == "GET" and path == "/v2/orders":
                return self._send(200, self._list(query))
            if method == "GET" and path == "/v2/orders:by_client_order_id":
                cid = query.get("client_order_id", [""])[0]
                if cid in fake.orders:
                    return self._send(200, fake.orders[cid])
                return self._send(404, {"code": 40410000, "message": "order not found"})
            if method == "POST" and path == "/v2/orders":
                return self._post_order()
        return self._send(404, {"code": 40410000, "message": f"no route {method} {path}"})

    def _list(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        status = query.get("status", ["open"])[0]
        limit = int(query.get("limit", ["50"])[0])
        orders = list(self.state.orders.values())
        if status == "open":
            orders = [o for o in orders if o["status"] in OPEN]
        elif status == "closed":
            orders = [o for o in orders if o["status"] not in OPEN]
        return sorted(orders, key=lambda o: o["id"], reverse=True)[:limit]

    def _post_order(self) -> None:
        fake = self.state
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        for field in ("symbol", "qty", "side", "type", "time_in_force"):
            if field not in body:
                return self._send(422, {"code": 40010000, "message": f"{field} is required"})
        cid = body.get("client_order_id")
        if cid and len(cid) > 48:
            return self._send(422, {"code": 40010000, "message": "client_order_id too long"})
        if cid and cid in fake.orders:
            return self._send(422, {"code": 40010001, "message": "client order id must be unique"})
        if body["symbol"] in fake.reject_symbols:
            status, message = fake.reject_symbols[body["symbol"]]
            return self._send(status, {"code": status * 100000, "message": message})
        order = fake.new_order(body)
        fake.orders[order["client_order_id"]] = order
        if cid in fake.lose_response_for:
            return self._send(500, {"code": 50000000, "message": "internal error"})
        return self._send(200, order)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")
