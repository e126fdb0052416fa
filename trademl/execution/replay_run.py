"""The daily execution loop over history through the `ReplayBroker`, and its reconciliation
with the backtest engine (the conventions are in `trademl.execution.replay`).

Each replayed session goes through what the live `orders` step does: `plan_orders` (sized
at the fill price on the book's capital), `check_tripwires` (QC, turnover, gross, stale
bars, drift) and `submit_all`. `backtest_on_fills` runs the engine on the weights the filled
shares imply, `reconcile` lines its daily P&L up with the replay's, and `rounding_bound`
bounds the replay's difference from the engine run on the target weights themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from trademl.backtest.engine import BacktestResult, run_backtest
from trademl.backtest.frames import to_matrix
from trademl.costs import CostModel
from trademl.costs.model import BPS
from trademl.data.calendar import SessionCalendar
from trademl.data.sources import BarSource
from trademl.execution.brokers import SubmitResult, submit_all
from trademl.execution.orders import (
    Order,
    PlanParams,
    gross_exposure,
    plan_orders,
    planned_turnover,
)
from trademl.execution.replay import ReplayBroker, ReplayParams
from trademl.execution.tripwires import SessionFacts, TripwireLimits, check_tripwires

__all__ = [
    "FrameSource",
    "ReplaySetup",
    "SessionReplay",
    "backtest_on_fills",
    "reconcile",
    "reconcile_to_targets",
    "replay_range",
    "replay_session",
    "rounding_bound",
]


class FrameSource:
    """A `BarSource` over bars already in memory (read the source once, replay many days)."""

    def __init__(self, bars: pl.DataFrame) -> None:
        self.bars = bars.sort("date", "symbol")

    def load(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        d = pl.col("date")
        return self.bars.filter((d >= (start or dt.date.min)) & (d <= (end or dt.date.max)))


@dataclass(frozen=True)
class ReplaySetup:
    """Everything a replayed session needs besides its weights."""

    folder: Path
    source: BarSource
    calendar: SessionCalendar
    params: ReplayParams = field(default_factory=ReplayParams)
    costs: CostModel = field(default_factory=CostModel)
    plan: PlanParams = field(default_factory=PlanParams)
    limits: TripwireLimits = field(default_factory=TripwireLimits)

    def open(
        self, session: dt.date | None, risk: Mapping[str, tuple[float, float]] | None = None
    ) -> ReplayBroker:
        """The replay broker opened for `session` (None: a read-only view)."""
        return ReplayBroker(
            self.folder,
            source=self.source,
            calendar=self.calendar,
            session=session,
            risk=risk,
            params=self.params,
            costs=self.costs,
        )


@dataclass(frozen=True)
class SessionReplay:
    """One replayed session: its plan, each order's outcome and any halt reasons."""

    session: dt.date
    orders: list[Order]
    results: list[SubmitResult]
    halts: list[str] = field(default_factory=list)


def replay_session(
    broker: ReplayBroker,
    targets: Mapping[str, float],
    *,
    plan: PlanParams,
    limits: TripwireLimits,
    qc_status: str,
    latest_bar_date: dt.date | None,
    drift: bool = False,
    drift_detail: str = "",
) -> SessionReplay:
    """Plan, check and submit the open session's orders, as the live `orders` step does."""
    session = broker.as_of
    if session is None:
        raise ValueError("open the replay broker for a session before replaying it")
    orders = plan_orders(
        targets,
        broker.positions(),
        broker.sizing_prices(),
        broker.capital,
        session=session,
        params=plan,
    )
    facts = SessionFacts(
        session=session,
        qc_status=qc_status,
        turnover=planned_turnover(orders, broker.capital),
        gross=gross_exposure(targets),
        latest_bar_date=latest_bar_date,
        drift=drift,
        drift_detail=drift_detail,
    )
    halts = check_tripwires(facts, limits)
    return SessionReplay(session, orders, submit_all(broker, orders, halt_reasons=halts), halts)


def _risk(rows: pl.DataFrame) -> dict[str, tuple[float, float]]:
    if not {"adv", "sigma"} <= set(rows.columns):
        return {}
    return {
        s: (np.nan if a is None else a, np.nan if v is None else v)
        for s, a, v in rows.select("symbol", "adv", "sigma").iter_rows()
    }


def replay_range(
    setup: ReplaySetup,
    weights: pl.DataFrame,
    sessions: Sequence[dt.date],
    *,
    qc: Mapping[dt.date, str],
    through: dt.date | None = None,
) -> list[SessionReplay]:
    """Replay each decision session of `sessions` in order, then book through `through`.

    `weights` holds date, symbol, weight (and adv, sigma when known: the risk the costs
    use); a symbol absent from a session's weights is closed, as the planner does. `qc` maps
    session → QC status; a session without one is UNKNOWN and the tripwires halt it.
    """
    out = []
    for d in sessions:
        rows = weights.filter(pl.col("date") == d)
        broker = setup.open(d, _risk(rows))
        targets = {s: w for s, w in rows.select("symbol", "weight").iter_rows() if w}
        latest = d if broker.session_bars(d) else None
        out.append(
            replay_session(
                broker,
                targets,
                plan=setup.plan,
                limits=setup.limits,
                qc_status=qc.get(d, "UNKNOWN"),
                latest_bar_date=latest,
            )
        )
    if through is not None:
        setup.open(through, _risk(weights.filter(pl.col("date") == through)))
    return out


def _grid(frame: pl.DataFrame, sessions: list[dt.date], symbols: list[str]) -> pl.DataFrame:
    return frame.filter(
        pl.col("date").is_in(pl.Series(sessions, dtype=pl.Date)) & pl.col("symbol").is_in(symbols)
    )


def backtest_on_fills(
    broker: ReplayBroker, bars: pl.DataFrame, risk: pl.DataFrame, calendar: SessionCalendar
) -> BacktestResult:
    """The engine on the weights the replay's filled shares imply, over its booked sessions.

    Row d's weight is (shares after the fills at the next session) × fill price / C, NaN
    where that session has no valid fill price (nothing could trade: hold), so the engine
    holds exactly the replay's shares; same capital, costs, fill price, lag 1.
    """
    first = broker.pnl().get_column("date").min()
    if first is None or broker.booked is None:
        raise ValueError(f"replay folder {broker.folder} has no booked session yet")
    sessions = calendar.sessions_in_range(first, broker.booked)  # type: ignore[arg-type]
    fills = broker.blotter().filter(pl.col("status") == "filled")
    symbols = sorted(set(bars.get_column("symbol").to_list()) | set(fills["symbol"].to_list()))
    signed = pl.when(pl.col("side") == "buy").then(1).otherwise(-1) * pl.col("filled_qty")
    moves = (
        fills.group_by(pl.col("fill_session").alias("date"), "symbol")
        .agg(signed.sum().cast(pl.Float64).alias("q"))
        .filter(pl.col("date") <= broker.booked)
    )
    q = np.nan_to_num(to_matrix(moves, "q", sessions, symbols)).cumsum(axis=0)
    b, r = _grid(bars, sessions, symbols), _grid(risk, sessions, symbols)
    o, c = (to_matrix(b, k, sessions, symbols) for k in ("open", "close"))
    px = o if broker.params.price == "open" else c
    w = np.full_like(q, np.nan)
    with np.errstate(invalid="ignore"):
        w[:-1] = np.where(
            np.isfinite(px[1:]) & (px[1:] > 0), q[1:] * px[1:] / broker.capital, np.nan
        )
    return run_backtest(
        w,
        o,
        c,
        to_matrix(r, "adv", sessions, symbols),
        to_matrix(r, "sigma", sessions, symbols),
        params=broker.params.backtest_params("hold"),
        costs=broker.costs,
        sessions=pl.Series("date", sessions, dtype=pl.Date),
        symbols=pl.Series(symbols),
    )


def reconcile(pnl: pl.DataFrame, result: BacktestResult, capital: float) -> pl.DataFrame:
    """Daily and cumulative net P&L of the replay beside the engine's (dollars), and the gap."""
    if result.sessions is None:
        raise ValueError("the backtest result needs its sessions to be reconciled by date")
    bt = pl.DataFrame({"date": result.sessions, "backtest_net": result.net_returns * capital})
    return (
        pnl.select("date", pl.col("net").alias("replay_net"))
        .join(bt, on="date", how="full", coalesce=True)
        .sort("date")
        .fill_null(0.0)
        .with_columns(
            (pl.col("replay_net") - pl.col("backtest_net")).alias("diff"),
            pl.col("replay_net").cum_sum().alias("replay_cum"),
            pl.col("backtest_net").cum_sum().alias("backtest_cum"),
        )
        .with_columns((pl.col("replay_cum") - pl.col("backtest_cum")).alias("cum_diff"))
    )


def rounding_bound(
    weights: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    adv: np.ndarray,
    sigma: np.ndarray,
    *,
    params: ReplayParams,
    costs: CostModel,
    plan: PlanParams,
) -> np.ndarray:
    """Per session (dollars): the most share rounding can move the replay's net P&L away from
    the engine's on the same target weights (sessions × symbols, complete prices, every order
    filled, market orders; NaN weight = 0, as the planner closes a name without a target).

    After the trade at t the replay holds q = w·C/p minus less than e per name, with
    e = lot (where the target w of row t−1 is non-zero) + min_notional/p (a skipped order),
    p the fill price. So session t's P&L differs by at most, per name:
    e(t−1)·|p_t − c_(t−1)| + e(t)·|c_t − p_t| (gross, p = c with price="close");
    ΔQ·p_t·(fee + half spread + auction) with ΔQ = e(t−1) + e(t) (linear costs);
    1.5·Y·p_t·σ·√((Q + ΔQ)/ADV)·ΔQ (the square-root impact's slope at the engine's traded Q;
    unknown_impact_bps·p_t·ΔQ where σ or ADV is unusable);
    e(t)·c_t·(dearest daily borrow rate) and e(t−1)·c_(t−1)·cash_rate/periods.
    """
    cap, lot, floor = params.capital, plan.lot_size, plan.min_notional
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64))
    p = np.asarray(open_ if params.price == "open" else close, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    out = np.zeros(w.shape[0])
    if w.shape[0] < 2:
        return out
    e = np.zeros_like(w)  # e[t]: the holdings' error after the trade at row t
    e[1:] = np.where(w[:-1] != 0, lot, 0.0) + floor / p[1:]
    shares = np.zeros_like(w)
    shares[1:] = w[:-1] * cap / p[1:]
    dq = e[1:] + e[:-1]
    traded = np.abs(np.diff(shares, axis=0))
    gross = e[:-1] * np.abs(p[1:] - c[:-1]) + e[1:] * np.abs(c[1:] - p[1:])
    lin = costs.fee_bps + costs.half_spread_bps + costs.auction_slippage_bps * params.auction_fills
    a, s = np.asarray(adv)[:-1], np.abs(np.asarray(sigma))[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = 1.5 * costs.impact_coef * s * np.sqrt((traded + dq) / a)
    slope = np.where(np.isfinite(slope) & (a > 0), slope, costs.unknown_impact_bps * BPS)
    cost = dq * p[1:] * (lin * BPS + slope)
    borrow = e[1:] * c[1:] * max(costs.borrow_bps_tiers) * BPS / costs.days_per_year
    cash = e[:-1] * c[:-1] * params.cash_rate / params.periods_per_year
    out[1:] = (gross + cost + borrow + cash).sum(axis=1)
    return out


def reconcile_to_targets(
    pnl: pl.DataFrame,
    weights: pl.DataFrame,
    bars: pl.DataFrame,
    risk: pl.DataFrame,
    sessions: list[dt.date],
    *,
    params: ReplayParams,
    costs: CostModel,
    plan: PlanParams,
    capital: float,
) -> tuple[pl.DataFrame, np.ndarray]:
    """The replay's P&L beside the engine's on the target weights themselves (flat where a
    price is missing), and the per-session share-rounding bound the gap must stay within."""
    from trademl.backtest.frames import backtest_frames, build_panel

    flat = params.backtest_params("flat")
    engine = backtest_frames(weights, bars, risk, params=flat, costs=costs, sessions=sessions)
    panel = build_panel(weights, bars, risk, sessions=sessions)
    bound = rounding_bound(
        panel.weights,
        panel.open,
        panel.close,
        panel.adv,
        panel.sigma,
        params=params,
        costs=costs,
        plan=plan,
    )
    return reconcile(pnl, engine, capital), bound
