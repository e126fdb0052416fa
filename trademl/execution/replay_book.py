"""The replay's accounting: one session's P&L in dollars, decomposed as the backtest engine
decomposes it (`trademl.backtest.engine`; the conventions are in `trademl.execution.replay`).

Pure functions of the holdings, marks, bars, fills and risk of the session, so the broker
only stores state and the arithmetic can be checked against hand-worked numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from trademl.backtest.engine import BacktestParams
from trademl.costs import CostModel, cost_breakdown, liquidity_tiers

__all__ = ["PNL_COLUMNS", "PNL_SCHEMA", "ReplayParams", "book_session", "valid_price"]

#: The P&L components of a booked session (dollars; costs = fee+spread+impact+auction+borrow).
PNL_COLUMNS = ["gross", "fee", "spread", "impact", "auction", "borrow", "cash_interest", "costs"]
PNL_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    **{c: pl.Float64() for c in PNL_COLUMNS},
    "net": pl.Float64(),
    "equity": pl.Float64(),
    "turnover": pl.Float64(),
    "long": pl.Float64(),
    "short": pl.Float64(),
    "fills": pl.Int64(),
}


@dataclass(frozen=True, slots=True)
class ReplayParams:
    """The replayed book: its capital and the engine's fill and accounting settings."""

    capital: float = 1_000_000.0
    price: Literal["open", "close"] = "open"
    auction_fills: bool = True
    cash_rate: float = 0.0
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capital) and self.capital > 0):
            raise ValueError(f"replay capital must be > 0, got {self.capital!r}")
        if self.price not in ("open", "close"):
            raise ValueError(f"replay price must be 'open' or 'close', got {self.price!r}")

    @classmethod
    def from_backtest(cls, p: BacktestParams, capital: float) -> ReplayParams:
        """The replay of a backtest's settings; the replay fills one session later (lag 1)."""
        if p.lag != 1:
            raise ValueError(
                f"the replay fills at the next session (lag 1); backtest.execution_lag is "
                f"{p.lag}: set it to 1 to replay"
            )
        return cls(capital, p.price, p.auction_fills, p.cash_rate, p.periods_per_year)

    def backtest_params(self, nan_target: Literal["hold", "flat"] = "hold") -> BacktestParams:
        """The engine settings the replay reconciles with."""
        return BacktestParams(
            lag=1,
            price=self.price,
            capital=self.capital,
            cash_rate=self.cash_rate,
            nan_target=nan_target,
            auction_fills=self.auction_fills,
            periods_per_year=self.periods_per_year,
        )


def valid_price(x: float | None) -> bool:
    """A usable price: present, finite and > 0 (the engine's test)."""
    return x is not None and math.isfinite(x) and x > 0


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def book_session(
    t: dt.date,
    *,
    held: Mapping[str, float],
    marks: dict[str, float],
    bars: Mapping[str, tuple[float | None, float | None]],
    fills: Sequence[Mapping[str, object]],
    risk: Mapping[str, tuple[float, float]],
    params: ReplayParams,
    costs: CostModel,
) -> tuple[dict[str, object], dict[str, float]]:
    """Session t's P&L row (`PNL_SCHEMA`, dollars) and the holdings after its fills.

    held: shares before t's fills; marks: the last price of every symbol seen (updated in
    place to t's close, carried forward where a price is missing); bars: symbol → (open,
    close) of t; fills: t's order records (status, side, filled_qty, price, adv, sigma of
    the decision session); risk: symbol → (ADV, σ) of t itself, for the borrow tiers.
    """
    traded: dict[str, list[float]] = {}  # symbol → [shares, notional, adv, sigma]
    after = dict(held)
    for r in fills:
        if r["status"] != "filled":
            continue
        sym = str(r["symbol"])
        q = float(r["filled_qty"]) * (1 if r["side"] == "buy" else -1)  # type: ignore[arg-type]
        after[sym] = after.get(sym, 0.0) + q
        acc = traded.setdefault(sym, [0.0, 0.0, _num(r["adv"]), _num(r["sigma"])])  # type: ignore[arg-type]
        acc[0] += abs(q)
        acc[1] += abs(q) * float(r["price"])  # type: ignore[arg-type]
    net_prev = sum(q * marks[s] for s, q in held.items())
    gross = 0.0
    for sym in sorted(set(bars) | set(after) | set(marks)):
        last = marks.get(sym)
        o_raw, c_raw = bars.get(sym, (None, None))
        o = o_raw if valid_price(o_raw) else last
        c = c_raw if valid_price(c_raw) else o
        if c is None or o is None:
            continue  # never priced: nothing can be held
        px = o if params.price == "open" else c
        q0, q1 = held.get(sym, 0.0), after.get(sym, 0.0)
        gross += (q0 * (px - last) if q0 and last is not None else 0.0) + q1 * (c - px)
        marks[sym] = c
    names = sorted(traded)
    cb = cost_breakdown(
        costs,
        np.array([traded[s][1] for s in names]),
        np.array([traded[s][0] for s in names]),
        np.array([traded[s][2] for s in names]),
        np.array([traded[s][3] for s in names]),
        auction=params.auction_fills,
    )
    after = {s: q for s, q in sorted(after.items()) if q}
    borrow = _borrow({s: -q * marks[s] for s, q in after.items() if q < 0}, risk, marks, costs)
    cash = (params.capital - net_prev) * (params.cash_rate / params.periods_per_year)
    lin = {k: float(np.sum(getattr(cb, k))) for k in ("fee", "spread", "impact", "auction")}
    total = lin["fee"] + lin["spread"] + lin["impact"] + lin["auction"] + borrow
    value = [q * marks[s] for s, q in after.items()]
    row: dict[str, object] = {
        "date": t,
        "gross": gross,
        **lin,
        "borrow": borrow,
        "cash_interest": cash,
        "costs": total,
        "net": gross + cash - total,
        "equity": math.nan,  # the broker adds the cumulative P&L
        "turnover": sum(v[1] for v in traded.values()) / params.capital,
        "long": sum(v for v in value if v > 0),
        "short": -sum(v for v in value if v < 0),
        "fills": sum(1 for r in fills if r["status"] == "filled"),
    }
    return row, after


def _borrow(
    shorts: Mapping[str, float],
    risk: Mapping[str, tuple[float, float]],
    marks: Mapping[str, float],
    costs: CostModel,
) -> float:
    """One session of borrow on short dollars; tiers by the session's dollar-ADV terciles
    over the risk rows (ADV × close), the least liquid tier for a name without ADV."""
    if not shorts:
        return 0.0
    rates = costs.borrow_daily_rate(np.arange(costs.n_tiers))
    if rates.min() == rates.max():
        return float(sum(shorts.values()) * rates[0])
    syms = sorted(risk)
    dollar_adv = np.array([risk[s][0] * marks.get(s, 0.0) for s in syms])
    tier = dict(zip(syms, liquidity_tiers(dollar_adv, costs.n_tiers).tolist(), strict=True))
    last = costs.n_tiers - 1
    return float(sum(v * rates[tier.get(s, last)] for s, v in shorts.items()))
