"""Alpaca trading through alpaca-py, paper by default, idempotent by client_order_id.

Orders are simple market or limit orders with time-in-force ``day`` (as planned): a day order
that has not filled by the close is cancelled by Alpaca, so nothing carries over silently.

Credentials come from environment variables (names configurable) read at construction. They
are handed to alpaca-py's client and appear in no log line, repr, exception text or file:
errors are rebuilt from the response with any key material replaced by ``***`` and without
the original exception chained (its request object carries the auth headers).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from trademl.execution.brokers import Account, BrokerError, BrokerOrder, SubmitResult, result_for
from trademl.execution.orders import Order

if TYPE_CHECKING:
    from alpaca.trading.models import Order as AlpacaOrder

logger = logging.getLogger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
_LIVE_HOST = "api.alpaca.markets"
DEFAULT_KEY_ENV = "APCA_API_KEY_ID"
DEFAULT_SECRET_ENV = "APCA_API_SECRET_KEY"
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")
_DUPLICATE = re.compile(r"client[ _]?order[ _]?id.*unique|unique.*client[ _]?order[ _]?id", re.I)
T = TypeVar("T")


class LiveTradingRefused(ValueError):
    """Live trading was requested without both the opt-in flag and the live endpoint."""


def resolve_endpoint(base_url: str | None, *, paper: bool, allow_live: bool) -> tuple[str, bool]:
    """(base URL, is_live). Live needs paper=False, allow_live=True and Alpaca's live URL."""
    url = (base_url or "").strip().rstrip("/")
    parts = urlsplit(url) if url else None
    if parts is not None and (parts.username or parts.password):
        raise ValueError("base_url must not carry credentials; keys come from the environment")
    live_url = parts is not None and parts.hostname == _LIVE_HOST
    if paper:
        if live_url:
            raise LiveTradingRefused(
                f"base_url {url} is Alpaca's LIVE endpoint but paper=True; live trading needs "
                "paper=False and allow_live=True"
            )
        return url or PAPER_URL, False
    if not allow_live:
        raise LiveTradingRefused(
            "live trading refused: paper=False also needs the explicit opt-in allow_live=True "
            f"and base_url={LIVE_URL}"
        )
    if not live_url or parts is None or parts.scheme != "https":
        raise LiveTradingRefused(
            f"live trading refused: base_url must be Alpaca's live endpoint {LIVE_URL}, "
            f"got {url or 'nothing'}"
        )
    return url, True


def _read_key(env_name: str, what: str) -> str:
    if not _ENV_NAME.fullmatch(env_name):
        # Never echo the value: someone may have pasted a key here instead of a variable name.
        raise ValueError(
            f"{what} must be the NAME of an environment variable (upper case with underscores, "
            f"e.g. {DEFAULT_KEY_ENV}), not a key"
        )
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise BrokerError(f"Alpaca credentials missing: environment variable {env_name} is not set")
    return value


def _api_error_text(err: Exception) -> tuple[int | None, str]:
    """(HTTP status, server message) of an alpaca-py APIError, else (None, exception text)."""
    status = getattr(err, "status_code", None)
    text = str(err)
    try:
        body = json.loads(text)
        if isinstance(body, dict) and "message" in body:
            text = str(body["message"])
    except ValueError:
        pass
    if status is None and not hasattr(err, "status_code"):
        text = f"{type(err).__name__}: {text}"
    return status, text[:300]


def _f(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def to_broker_order(o: AlpacaOrder) -> BrokerOrder:
    """alpaca-py's Order → BrokerOrder."""
    return BrokerOrder(
        client_order_id=o.client_order_id,
        symbol=o.symbol or "",
        side=_enum(o.side),
        qty=_f(o.qty) or 0.0,
        filled_qty=_f(o.filled_qty) or 0.0,
        filled_avg_price=_f(o.filled_avg_price),
        status=_enum(o.status),
        order_type=_enum(o.type or o.order_type),
        limit_price=_f(o.limit_price),
        broker_order_id=str(o.id),
        submitted_at=o.submitted_at,
    )


class AlpacaBroker:
    """`Broker` over Alpaca's trading API (paper unless live is explicitly unlocked).

    Parameters
    ----------
    base_url
        Endpoint override (a proxy or a local fake); default Alpaca paper.
    paper, allow_live
        Live trading needs paper=False, allow_live=True and base_url=LIVE_URL together.
    key_env, secret_env
        Names of the environment variables holding the key id and the secret.
    journal_dir
        If set, every submission outcome is appended to ``alpaca_submissions.jsonl`` there.
    """

    name = "alpaca"
    JOURNAL_FILE = "alpaca_submissions.jsonl"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        paper: bool = True,
        allow_live: bool = False,
        key_env: str = DEFAULT_KEY_ENV,
        secret_env: str = DEFAULT_SECRET_ENV,
        journal_dir: str | os.PathLike[str] | None = None,
        list_limit: int = 500,
    ) -> None:
        from alpaca.trading.client import TradingClient

        self.base_url, self.is_live = resolve_endpoint(base_url, paper=paper, allow_live=allow_live)
        key = _read_key(key_env, "key_env")
        secret = _read_key(secret_env, "secret_env")
        self._scrub_values = tuple(v for v in (key, secret) if v)
        self._client = TradingClient(
            api_key=key, secret_key=secret, paper=not self.is_live, url_override=self.base_url
        )
        self._journal = Path(journal_dir) / self.JOURNAL_FILE if journal_dir is not None else None
        self._list_limit = list_limit
        if self.is_live:
            logger.warning("Alpaca broker is LIVE (%s): orders trade real money", self.base_url)

    def __repr__(self) -> str:
        return f"AlpacaBroker(base_url={self.base_url!r}, live={self.is_live})"

    def __reduce__(self) -> Any:
        raise TypeError("AlpacaBroker holds credentials and cannot be pickled")

    def _scrub(self, text: str) -> str:
        for value in self._scrub_values:
            text = text.replace(value, "***")
        return text

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run a client call; failures become a BrokerError with a scrubbed, unchained message."""
        try:
            return fn()
        except Exception as e:
            status, text = _api_error_text(e)
        error = BrokerError(
            self._scrub(
                f"Alpaca {what} failed" + (f" (HTTP {status})" if status else "") + f": {text}"
            )
        )
        raise error

    def account(self) -> Account:
        acct = self._call("get account", self._client.get_account)
        return Account(
            equity=_f(acct.equity) or 0.0,  # type: ignore[union-attr]
            cash=_f(acct.cash) or 0.0,  # type: ignore[union-attr]
            buying_power=_f(acct.buying_power),  # type: ignore[union-attr]
        )

    def positions(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self._call("list positions", self._client.get_all_positions):
            qty = float(p.qty)  # type: ignore[union-attr]
            if _enum(p.side) == "short" and qty > 0:  # type: ignore[union-attr]
                qty = -qty
            out[p.symbol] = qty  # type: ignore[union-attr]
        return out

    def list_orders(self) -> list[BrokerOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=self._list_limit, nested=False)
        orders = self._call("list orders", lambda: self._client.get_orders(filter=req))
        return [to_broker_order(o) for o in orders]  # type: ignore[arg-type, union-attr]

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        try:
            o = self._client.get_order_by_client_id(client_order_id)
            return to_broker_order(o)  # type: ignore[arg-type]
        except Exception as e:
            status, text = _api_error_text(e)
        if status == 404:
            return None
        raise BrokerError(
            self._scrub(f"Alpaca get order {client_order_id} failed (HTTP {status}): {text}")
        )

    def _request(self, order: Order) -> Any:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

        common = {
            "symbol": order.symbol,
            "qty": order.qty,
            "side": OrderSide(order.side),
            "time_in_force": TimeInForce(order.time_in_force),
            "client_order_id": order.client_order_id,
        }
        if order.order_type == "limit":
            return LimitOrderRequest(limit_price=order.limit_price, **common)
        return MarketOrderRequest(**common)

    def submit(self, order: Order) -> SubmitResult:
        """Submit once; a duplicate client_order_id (HTTP 422) returns the existing order."""
        request = self._request(order)
        try:
            sent = to_broker_order(self._client.submit_order(request))  # type: ignore[arg-type]
            result = result_for(order, "submitted", broker_order=sent)
        except Exception as e:
            status, text = _api_error_text(e)
            result = self._after_failed_submit(order, status, self._scrub(text))
        logger.info(
            "alpaca %s: %s %d %s -> %s%s",
            order.client_order_id,
            order.side,
            order.qty,
            order.symbol,
            result.status,
            f" ({result.reason})" if result.reason else "",
        )
        self._write_journal(result)
        return result

    def _after_failed_submit(self, order: Order, status: int | None, text: str) -> SubmitResult:
        duplicate = status == 422 and bool(_DUPLICATE.search(text))
        if status is not None and 400 <= status < 500 and not duplicate:
            return result_for(order, "rejected", reason=f"HTTP {status}: {text}")
        # A duplicate id, or an outcome we cannot know (5xx, network): ask the broker.
        try:
            existing = self.get_order(order.client_order_id)
        except BrokerError as err:
            return result_for(order, "rejected", reason=f"{text}; then lookup failed: {err}")
        if existing is not None:
            if duplicate:
                return result_for(order, "already_present", broker_order=existing)
            return result_for(
                order,
                "submitted",
                reason=f"response lost ({text}); order found at broker",
                broker_order=existing,
            )
        where = f"HTTP {status}" if status else "no response"
        return result_for(order, "rejected", reason=f"{where}: {text}; order not found at broker")

    def _write_journal(self, result: SubmitResult) -> None:
        if self._journal is None:
            return
        rec = dataclasses.asdict(result)
        rec.pop("broker_order")
        bo = result.broker_order
        rec["broker_status"] = bo.status if bo else None
        rec["broker_order_id"] = bo.broker_order_id if bo else None
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a") as fh:
            fh.write(self._scrub(json.dumps(rec, sort_keys=True)) + "\n")
