"""Almgren–Chriss against the paper's example and closed forms; TWAP; integer slicing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trademl.execution.orders import MAX_CLIENT_ORDER_ID, Order
from trademl.execution.schedule import (
    ACParams,
    almgren_chriss,
    integer_trades,
    schedule_cost,
    slice_order,
    twap,
)

# Almgren & Chriss (2000), section 3 example: 1e6 shares over 5 days in 5 periods.
AC = ACParams(sigma=0.95, eta=2.5e-6, gamma=2.5e-7, epsilon=0.0625, risk_aversion=1e-6)
X, T, N = 1_000_000.0, 5.0, 5


def test_paper_example_holdings() -> None:
    sched = almgren_chriss(X, T, N, AC)
    expected = [1_000_000, 541_956, 289_854, 147_898, 62_142, 0]
    np.testing.assert_allclose(sched.holdings, expected, atol=3.0)
    np.testing.assert_allclose(sched.times, [0, 1, 2, 3, 4, 5])
    assert sched.trades.sum() == pytest.approx(X)


def test_expected_cost_and_variance_match_closed_forms() -> None:
    """E and V from the sums equal Almgren–Chriss's closed-form expressions."""
    sched = almgren_chriss(X, T, N, AC)
    tau, k = T / N, sched.kappa
    eta_t = AC.eta - AC.gamma * tau / 2
    assert math.cosh(k * tau) == pytest.approx(1 + AC.risk_aversion * AC.sigma**2 / eta_t / 2)
    e_closed = (
        0.5 * AC.gamma * X**2
        + AC.epsilon * X
        + eta_t
        * X**2
        * math.tanh(k * tau / 2)
        * (tau * math.sinh(2 * k * T) + 2 * T * math.sinh(k * tau))
        / (2 * tau**2 * math.sinh(k * T) ** 2)
    )
    v_closed = (
        0.5
        * AC.sigma**2
        * X**2
        * (tau * math.sinh(k * T) * math.cosh(k * (T - tau)) - T * math.sinh(k * tau))
        / (math.sinh(k * T) ** 2 * math.sinh(k * tau))
    )
    assert sched.expected_cost == pytest.approx(e_closed, rel=1e-10)
    assert sched.variance == pytest.approx(v_closed, rel=1e-10)


def test_twap_closed_forms() -> None:
    sched = twap(X, T, N, AC)
    tau = T / N
    eta_t = AC.eta - AC.gamma * tau / 2
    np.testing.assert_allclose(sched.trades, np.full(N, X / N))
    assert sched.expected_cost == pytest.approx(
        0.5 * AC.gamma * X**2 + AC.epsilon * X + eta_t * X**2 / T, rel=1e-12
    )
    assert sched.variance == pytest.approx(
        AC.sigma**2 * X**2 * T * (1 - 1 / N) * (1 - 1 / (2 * N)) / 3, rel=1e-12
    )


def test_ac_minimises_cost_plus_risk_over_perturbed_trajectories() -> None:
    sched = almgren_chriss(X, T, N, AC)
    lam = AC.risk_aversion
    best = sched.expected_cost + lam * sched.variance
    twap_sched = twap(X, T, N, AC)
    assert best < twap_sched.expected_cost + lam * twap_sched.variance
    rng = np.random.default_rng(7)
    for _ in range(200):
        x = sched.holdings.copy()
        x[1:-1] += rng.normal(0, 5_000, N - 1)
        e, v = schedule_cost(x, T / N, AC)
        assert e + lam * v > best


def test_more_risk_aversion_trades_earlier() -> None:
    front = [
        almgren_chriss(X, T, N, dataclasses.replace(AC, risk_aversion=lam)).trades[0]
        for lam in (0.0, 1e-7, 1e-6, 1e-5)
    ]
    assert front == sorted(front) and front[0] == pytest.approx(X / N)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shares=st.floats(1.0, 1e7),
    horizon=st.floats(0.1, 50.0),
    n=st.integers(1, 60),
    lam=st.sampled_from([0.0, 1e-16, 1e-14, 1e-12]),
)
def test_vanishing_risk_aversion_gives_twap(
    shares: float, horizon: float, n: int, lam: float
) -> None:
    params = ACParams(sigma=0.95, eta=2.5e-6, gamma=2.5e-7 / max(horizon, 1.0), risk_aversion=lam)
    ac, tw = almgren_chriss(shares, horizon, n, params), twap(shares, horizon, n)
    np.testing.assert_allclose(ac.holdings, tw.holdings, rtol=0, atol=1e-4 * shares)
    if lam == 0.0:
        np.testing.assert_allclose(ac.holdings, tw.holdings, rtol=1e-12, atol=1e-9 * shares)


def test_extreme_urgency_does_not_overflow() -> None:
    sched = almgren_chriss(X, 500.0, 500, ACParams(0.95, 2.5e-6, 2.5e-7, 0.0, 1e-2))
    assert np.all(np.isfinite(sched.holdings)) and sched.holdings[-1] == 0
    assert sched.trades[0] > 0.9 * X  # nearly everything at once


def test_ill_posed_impact_is_refused() -> None:
    with pytest.raises(ValueError, match="eta - gamma"):
        almgren_chriss(X, 5.0, 1, ACParams(sigma=1, eta=1e-7, gamma=1e-6, risk_aversion=1e-6))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    shares=st.integers(0, 10_000_000),
    n=st.integers(1, 99),
    lam=st.sampled_from([0.0, 1e-7, 1e-6, 1e-5]),
)
def test_integer_trades_sum_exactly_and_track_the_curve(shares: int, n: int, lam: float) -> None:
    sched = almgren_chriss(float(shares), 1.0, n, ACParams(0.95, 2.5e-6, 0.0, 0.0, lam))
    trades = integer_trades(sched.holdings)
    assert trades.dtype.kind == "i" and int(trades.sum()) == shares and np.all(trades >= 0)
    done = np.concatenate([[0], np.cumsum(trades)])
    assert np.max(np.abs(done - (shares - sched.holdings))) <= 0.5 + 1e-6


def _order(qty: int) -> Order:
    return Order(session=dt.date(2024, 3, 5), symbol="AAPL", side="sell", qty=qty, ref_price=190.0)


def test_twap_slices_hand_worked() -> None:
    start = dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)
    kids = slice_order(_order(1003), start=start, end=start + dt.timedelta(hours=4), n_slices=4)
    # cumulative targets 250.75, 501.5, 752.25, 1003 -> rounded 251, 502, 752, 1003
    assert [k.order.qty for k in kids] == [251, 251, 250, 251]
    assert [k.at - start for k in kids] == [dt.timedelta(hours=h) for h in range(4)]
    assert all(k.order.side == "sell" and k.order.symbol == "AAPL" for k in kids)


def test_ac_slices_are_front_loaded_integer_and_deterministic() -> None:
    start = dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC)
    parent = _order(1_000_000)
    kw = {"start": start, "end": start + dt.timedelta(days=5), "n_slices": 5}
    kids = slice_order(parent, method="ac", params=AC, horizon=5.0, **kw)  # type: ignore[arg-type]
    qty = [k.order.qty for k in kids]
    assert sum(qty) == parent.qty and qty == sorted(qty, reverse=True)
    assert qty[0] == pytest.approx(458_044, abs=2)
    again = slice_order(parent, method="ac", params=AC, horizon=5.0, **kw)  # type: ignore[arg-type]
    assert [k.order.client_order_id for k in kids] == [k.order.client_order_id for k in again]
    assert all(k.parent_id == parent.client_order_id for k in kids)
    ids = {k.order.client_order_id for k in kids}
    assert len(ids) == 5 and all(len(i) <= MAX_CLIENT_ORDER_ID for i in ids)


def test_small_orders_drop_empty_slices() -> None:
    start = dt.datetime(2024, 3, 5, 14, 30)
    kids = slice_order(_order(3), start=start, end=start + dt.timedelta(hours=1), n_slices=10)
    assert sum(k.order.qty for k in kids) == 3 and all(k.order.qty > 0 for k in kids)


def test_slice_argument_errors() -> None:
    start = dt.datetime(2024, 3, 5, 14, 30)
    with pytest.raises(ValueError, match="needs ACParams"):
        slice_order(_order(10), start=start, end=start + dt.timedelta(1), n_slices=2, method="ac")
    with pytest.raises(ValueError, match="end"):
        slice_order(_order(10), start=start, end=start, n_slices=2)
    with pytest.raises(ValueError, match=r"1\.\.99"):
        slice_order(_order(10), start=start, end=start + dt.timedelta(1), n_slices=100)
