"""Execution schedules: Almgren–Chriss optimal liquidation and TWAP, and order slicing.

Almgren & Chriss (2000), "Optimal execution of portfolio transactions", discrete version:
N periods of length τ = T/N, linear temporary impact ε·sgn(n) + η·n/τ, linear permanent
impact γ·n. With η̃ = η − γτ/2 and κ̃² = λσ²/η̃, κ solves cosh(κτ) = 1 + κ̃²τ²/2 and the
optimal holdings are x_j = X·sinh(κ(T − t_j)) / sinh(κT). λ → 0 gives TWAP.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trademl.execution.orders import MAX_CLIENT_ORDER_ID, Order


@dataclass(frozen=True, slots=True)
class ACParams:
    """Almgren–Chriss market parameters, all in one time unit (e.g. days).

    Parameters
    ----------
    sigma
        Price volatility, $/share/√time.
    eta
        Temporary impact, ($/share) per (share/time).
    gamma
        Permanent impact, ($/share) per share.
    epsilon
        Fixed cost per share traded ($/share): half the spread plus fees.
    risk_aversion
        λ, per $² of variance; 0 is the risk-neutral (TWAP) trader.
    """

    sigma: float
    eta: float
    gamma: float
    epsilon: float = 0.0
    risk_aversion: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sigma", "eta", "gamma", "epsilon", "risk_aversion"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ACParams.{name} must be finite and >= 0, got {value}")


@dataclass(frozen=True)
class Schedule:
    """A trajectory over times t_0..t_N: holdings x_j (x_0 = X, x_N = 0) and trades n_j."""

    times: np.ndarray
    holdings: np.ndarray
    trades: np.ndarray
    expected_cost: float
    variance: float
    kappa: float


def _check(shares: float, horizon: float, n_periods: int) -> float:
    if not (math.isfinite(shares) and shares >= 0):
        raise ValueError(f"shares to trade must be finite and >= 0, got {shares}")
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon T must be > 0, got {horizon}")
    if n_periods < 1:
        raise ValueError(f"n_periods N must be >= 1, got {n_periods}")
    return horizon / n_periods


def eta_tilde(params: ACParams, tau: float) -> float:
    """η̃ = η − γτ/2, the temporary impact net of the discrete-time permanent-impact term."""
    value = params.eta - params.gamma * tau / 2
    if value <= 0:
        raise ValueError(
            f"eta - gamma*tau/2 = {value:.3g} <= 0 (eta={params.eta}, gamma={params.gamma}, "
            f"tau={tau}); use more periods or a larger eta"
        )
    return value


def ac_kappa(params: ACParams, tau: float) -> float:
    """κ from cosh(κτ) = 1 + κ̃²τ²/2, κ̃² = λσ²/η̃ (accurate for tiny λ via log1p)."""
    kt2 = params.risk_aversion * params.sigma**2 / eta_tilde(params, tau)
    d = kt2 * tau * tau / 2
    return math.log1p(d + math.sqrt(d * (2 + d))) / tau


def _sinh_ratio(a: np.ndarray, b: float) -> np.ndarray:
    """sinh(a)/sinh(b) for 0 <= a <= b, without overflow for large b."""
    return np.exp(a - b) * (-np.expm1(-2 * a)) / (-math.expm1(-2 * b))


def schedule_cost(holdings: np.ndarray, tau: float, params: ACParams) -> tuple[float, float]:
    """(E, V) of a trajectory: E = ½γX² + εΣ|n| + (η̃/τ)Σn², V = σ²τΣ_{j≥1} x_j²."""
    x = np.asarray(holdings, dtype=float)
    n = -np.diff(x)
    big_x = x[0]
    cost = (
        0.5 * params.gamma * big_x**2
        + params.epsilon * float(np.abs(n).sum())
        + eta_tilde(params, tau) / tau * float((n * n).sum())
    )
    variance = params.sigma**2 * tau * float((x[1:] ** 2).sum())
    return float(cost), float(variance)


def almgren_chriss(shares: float, horizon: float, n_periods: int, params: ACParams) -> Schedule:
    """Optimal Almgren–Chriss trajectory for trading ``shares`` over ``horizon`` in N periods."""
    tau = _check(shares, horizon, n_periods)
    kappa = ac_kappa(params, tau)
    times = np.arange(n_periods + 1) * tau
    times[-1] = horizon
    if kappa * horizon < 1e-12:
        frac = (horizon - times) / horizon
    else:
        frac = _sinh_ratio(kappa * (horizon - times), kappa * horizon)
    holdings = shares * frac
    holdings[0], holdings[-1] = shares, 0.0
    cost, variance = schedule_cost(holdings, tau, params)
    return Schedule(times, holdings, -np.diff(holdings), cost, variance, kappa)


def twap(shares: float, horizon: float, n_periods: int, params: ACParams | None = None) -> Schedule:
    """Equal trades each period (the λ = 0 limit); E and V are NaN without ``params``."""
    tau = _check(shares, horizon, n_periods)
    times = np.arange(n_periods + 1) * tau
    times[-1] = horizon
    holdings = shares * (n_periods - np.arange(n_periods + 1)) / n_periods
    cost, variance = (
        (math.nan, math.nan) if params is None else schedule_cost(holdings, tau, params)
    )
    return Schedule(times, holdings, -np.diff(holdings), cost, variance, 0.0)


def integer_slices(holdings: np.ndarray) -> np.ndarray:
    """`integer_trades` of each row of a [parents, N + 1] holdings array."""
    x = np.asarray(holdings, dtype=float)
    total = np.round(x[:, 0])
    if (np.abs(x[:, 0] - total) > 1e-6).any():
        raise ValueError("holdings must start at whole shares for integer slicing")
    done = np.rint(x[:, :1] - x).astype(np.int64)
    done[:, 0], done[:, -1] = 0, total.astype(np.int64)
    done = np.maximum.accumulate(np.clip(done, 0, total.astype(np.int64)[:, None]), axis=1)
    return np.diff(done, axis=1)


def integer_trades(holdings: np.ndarray) -> np.ndarray:
    """Whole-share trades whose running total tracks the trajectory and sums exactly to X.

    Rounds the cumulative amount traded (not each trade), so errors never accumulate.
    """
    x = np.asarray(holdings, dtype=float)
    total = round(x[0])
    if abs(x[0] - total) > 1e-6:
        raise ValueError(f"holdings start at {x[0]}; integer slicing needs whole shares")
    done = np.rint(x[0] - x).astype(np.int64)
    done[0], done[-1] = 0, total
    done = np.maximum.accumulate(np.clip(done, 0, total))
    return np.diff(done)


@dataclass(frozen=True, slots=True)
class ChildOrder:
    """One slice of a parent order, to be sent at ``at``; ``order`` goes to a broker as is."""

    at: dt.datetime
    index: int
    parent_id: str
    order: Order


def _child_id(parent: Order, index: int) -> str:
    """``<parent id>-NN``: siblings share their parent's id, so conflict checks see one plan."""
    cid = f"{parent.client_order_id}-{index:02d}"
    if len(cid) > MAX_CLIENT_ORDER_ID:
        raise ValueError(
            f"child id of {parent.client_order_id!r} would be {len(cid)} characters "
            f"(limit {MAX_CLIENT_ORDER_ID}); shorten the parent id"
        )
    return cid


def slice_order(
    order: Order,
    *,
    start: dt.datetime,
    end: dt.datetime,
    n_slices: int,
    method: Literal["twap", "ac"] = "twap",
    params: ACParams | None = None,
    horizon: float = 1.0,
) -> list[ChildOrder]:
    """Split a parent order into child orders over [start, end) by TWAP or Almgren–Chriss.

    Slice j (1-based) trades n_j shares at the start of its interval. Quantities are whole
    shares summing exactly to ``order.qty``; empty slices are dropped. Child ids are
    ``<parent id>-NN``, so keep one slicing (method, n_slices) per parent and session.

    Parameters
    ----------
    horizon
        Length of [start, end) in the time unit of ``params`` (1.0: the window is one unit,
        e.g. one trading day with daily σ and η). Only AC depends on it.
    """
    if not 1 <= n_slices <= 99:
        raise ValueError(f"n_slices must be in 1..99, got {n_slices}")
    if end <= start:
        raise ValueError(f"slice window for {order.client_order_id}: end {end} <= start {start}")
    if method == "ac":
        if params is None:
            raise ValueError("method='ac' needs ACParams")
        sched = almgren_chriss(float(order.qty), horizon, n_slices, params)
    elif method == "twap":
        sched = twap(float(order.qty), horizon, n_slices)
    else:
        raise ValueError(f"method must be 'twap' or 'ac', got {method!r}")
    step = (end - start) / n_slices
    children = []
    for j, qty in enumerate(integer_trades(sched.holdings), start=1):
        if qty <= 0:
            continue
        at = start + step * (j - 1)
        child = dataclasses.replace(order, qty=int(qty), client_order_id=_child_id(order, j))
        children.append(ChildOrder(at=at, index=j, parent_id=order.client_order_id, order=child))
    return children
