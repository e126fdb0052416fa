"""A 3-symbol × 5-session backtest worked by hand, step by step, with costs and borrow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trademl.backtest import BacktestParams, run_backtest
from trademl.costs import CostModel

NAN = np.nan
K = 1_000_000.0  # capital: fractions below are of $1M

# Sessions t0..t4, symbols A, B, C.
OPEN = np.array(
    [
        # A      B     C
        [100.0, 50.0, 20.0],  # t0
        [100.0, 50.0, 20.0],  # t1
        [102.0, 49.0, 20.0],  # t2
        [105.0, 48.0, 21.0],  # t3
        [100.0, 50.0, 20.0],  # t4
    ]
)
CLOSE = np.array(
    [
        [100.0, 50.0, 20.0],
        [101.0, 49.0, 20.0],
        [104.0, 48.0, 22.0],
        [100.0, 50.0, 20.0],
        [100.0, 52.0, 20.0],
    ]
)
# Decided at each close, executed at the next open (lag 1). NaN = hold the shares.
WEIGHTS = np.array(
    [
        [0.5, -0.25, 0.0],
        [NAN, -0.25, -0.2],
        [0.5, NAN, 0.0],
        [0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0],
    ]
)
ADV = np.tile([500_000.0, 125_000.0, 40_000.0], (5, 1))  # shares
SIGMA = np.tile([0.02, 0.01, 0.03], (5, 1))
# Dollar ADV ≈ $50M, $6M, $0.8M every session: terciles give tiers A 0, B 1, C 2.
COSTS = CostModel(
    fee_bps=1.0,
    half_spread_bps=4.0,
    auction_slippage_bps=1.0,  # all fills are auction fills: 6 bp linear cost in all
    impact_coef=1.0,
    borrow_bps_tiers=(252.0, 504.0, 756.0),  # /252 → 1, 2, 3 bp per session
)
PARAMS = BacktestParams(lag=1, price="open", capital=K, cash_rate=0.0252)  # cash: 1 bp/session


def imp(sigma: float, shares: float, adv: float, notional: float) -> float:
    """Square-root impact Y·σ·√(Q/ADV) on the traded notional (Y = 1)."""
    return sigma * math.sqrt(shares / adv) * notional


def test_three_symbols_five_sessions_by_hand() -> None:
    res = run_backtest(WEIGHTS, OPEN, CLOSE, ADV, SIGMA, params=PARAMS, costs=COSTS)
    lin = 6e-4  # fee 1 + half spread 4 + auction 1 bp

    # t0: nothing decided before t0 → no position, no cost; cash earns 1 bp on 1.0.
    g0, c0, cash0 = 0.0, 0.0, 1e-4

    # t1 open: targets of row t0. A buys 0.5 → 0.005 units = 5,000 sh at 100;
    # B sells 0.25 → −5,000 sh at 50. Turnover 0.75.
    to1 = 0.5 + 0.25
    imp1 = imp(0.02, 5_000, 500_000, 0.5) + imp(0.01, 5_000, 125_000, 0.25)  # 0.001 + 0.0005
    assert imp1 == pytest.approx(0.0015)
    g1 = 0.005 * (101 - 100) + (-0.005) * (49 - 50)  # intraday only: 0.005 + 0.005
    long1, short1 = 0.005 * 101, 0.005 * 49  # 0.505, 0.245 at the close
    bor1 = short1 * 2e-4  # B is tier 1: 2 bp
    cash1 = (1 - 0.0) * 1e-4  # net exposure at t0's close was 0
    c1 = lin * to1 + imp1 + bor1

    # t2 open: row t1. A holds 0.005 units (NaN target). B drifted −0.005·49 = −0.245 → −0.25:
    # sells 0.005 more (0.005/49·1e6 = 102.04 sh, 1/1225 of ADV). C shorts 0.2 at 20
    # (−0.01 units = −10,000 sh = 25 % of ADV → √ = 0.5).
    sb2 = -0.25 / 49
    to2 = 0.005 + 0.2
    imp2 = imp(0.01, 0.005 / 49 * K, 125_000, 0.005) + imp(0.03, 10_000, 40_000, 0.2)
    assert imp2 == pytest.approx(0.01 / 35 * 0.005 + 0.015 * 0.2)
    overnight2 = 0.005 * (102 - 101) + (-0.005) * (49 - 49)
    intraday2 = 0.005 * (104 - 102) + sb2 * (48 - 49) + (-0.01) * (22 - 20)
    g2 = overnight2 + intraday2
    long2, short2 = 0.005 * 104, -sb2 * 48 + 0.01 * 22
    bor2 = -sb2 * 48 * 2e-4 + 0.01 * 22 * 3e-4  # B tier 1, C tier 2
    cash2 = (1 - (long1 - short1)) * 1e-4
    c2 = lin * to2 + imp2 + bor2

    # t3 open: row t2. A drifted 0.005·105 = 0.525 → 0.5: sells 0.025 (238.1 sh);
    # B holds (NaN); C covers 0.01 units = 10,000 sh at 21 → notional 0.21.
    sa3 = 0.5 / 105
    to3 = 0.025 + 0.21
    imp3 = imp(0.02, 0.025 / 105 * K, 500_000, 0.025) + imp(0.03, 10_000, 40_000, 0.21)
    overnight3 = 0.005 * (105 - 104) + sb2 * (48 - 48) + (-0.01) * (21 - 22)
    intraday3 = sa3 * (100 - 105) + sb2 * (50 - 48)
    g3 = overnight3 + intraday3
    long3, short3 = sa3 * 100, -sb2 * 50
    bor3 = short3 * 2e-4
    cash3 = (1 - (long2 - short2)) * 1e-4
    c3 = lin * to3 + imp3 + bor3

    # t4 open: row t3 = all 0. Sell A's 4,761.9 sh at 100, cover B's 5,102.0 sh at 50.
    # Row t4's weights would trade at t5, which does not exist: ignored.
    to4 = sa3 * 100 + (-sb2) * 50
    imp4 = imp(0.02, sa3 * K, 500_000, sa3 * 100) + imp(0.01, -sb2 * K, 125_000, -sb2 * 50)
    g4 = sa3 * (100 - 100) + sb2 * (50 - 50)  # overnight; flat during the day
    cash4 = (1 - (long3 - short3)) * 1e-4
    c4 = lin * to4 + imp4

    gross = np.array([g0, g1, g2, g3, g4])
    cash = np.array([cash0, cash1, cash2, cash3, cash4])
    cost = np.array([c0, c1, c2, c3, c4])
    net = gross + cash - cost
    np.testing.assert_allclose(res.gross_returns, gross, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.turnover, [0.0, to1, to2, to3, to4], rtol=1e-12)
    np.testing.assert_allclose(res.impact, [0.0, imp1, imp2, imp3, imp4], rtol=1e-12)
    np.testing.assert_allclose(res.fee, 1e-4 * np.array([0, to1, to2, to3, to4]), rtol=1e-12)
    np.testing.assert_allclose(res.spread, 4e-4 * np.array([0, to1, to2, to3, to4]), rtol=1e-12)
    np.testing.assert_allclose(res.auction, res.fee, rtol=1e-12)
    np.testing.assert_allclose(res.borrow, [0.0, bor1, bor2, bor3, 0.0], rtol=1e-12)
    np.testing.assert_allclose(res.cash_interest, cash, rtol=1e-12)
    np.testing.assert_allclose(res.costs, cost, rtol=1e-12)
    np.testing.assert_allclose(res.net_returns, net, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.equity, np.cumprod(1 + net), rtol=1e-12)
    np.testing.assert_allclose(res.long_exposure, [0, long1, long2, long3, 0], atol=1e-15)
    np.testing.assert_allclose(res.short_exposure, [0, short1, short2, short3, 0], atol=1e-15)
    np.testing.assert_allclose(res.net_exposure, res.long_exposure - res.short_exposure)
    # Participation: t1 A 1 %, B 4 %; t2 B 1/1225, C 25 %.
    np.testing.assert_allclose(res.participation_max[:3], [0.0, 0.04, 0.25])
    np.testing.assert_allclose(res.participation_mean[:3], [0.0, 0.025, (0.25 + 1 / 1225) / 2])
    # Net by then: 1 % gross at t1, less 6 bp × 0.75, 15 bp impact, borrow; plus 1 bp cash.
    assert res.net_returns[1] == pytest.approx(0.010 - 0.00045 - 0.0015 - 0.000049 + 0.0001)


def test_close_execution_lag_zero_and_missing_price() -> None:
    # Trade at the decision session's own close (lag 0): no overnight leg at all.
    # Name A's close is missing at t1: its row-t1 target is skipped (A holds), and its mark
    # stays at 10 that session, so t1 has no return on A; t2 moves 10 → 12.
    close = np.array([[10.0, 20.0], [NAN, 20.0], [12.0, 25.0]])
    w = np.array([[0.4, -0.3], [0.9, -0.3], [0.4, NAN]])
    adv = np.full((3, 2), 1e9)
    sig = np.zeros((3, 2))  # σ = 0 → no impact
    cm = CostModel(half_spread_bps=10.0, borrow_bps_tiers=(0.0,))
    p = BacktestParams(lag=0, price="close", capital=1.0)
    res = run_backtest(w, None, close, adv, sig, params=p, costs=cm)
    # t0: buy 0.4 of A at 10 (0.04 units), short 0.3 of B at 20 (−0.015 units): 10 bp × 0.7.
    # t1: A unpriced → target 0.9 skipped; B already at −0.3 → no trade. No price moves.
    # t2: A 0.04 units · (12 − 10) = +0.08; B −0.015 · (25 − 20) = −0.075. Then A: 0.04·12 =
    # 0.48 → 0.4 sells 0.08; B holds (NaN).
    np.testing.assert_allclose(res.gross_returns, [0.0, 0.0, 0.08 - 0.075], atol=1e-15)
    np.testing.assert_allclose(res.turnover, [0.7, 0.0, 0.08], atol=1e-15)
    np.testing.assert_allclose(res.spread, [0.7e-3, 0.0, 0.08e-3], atol=1e-15)
    np.testing.assert_allclose(res.long_exposure, [0.4, 0.4, 0.4], atol=1e-15)
    np.testing.assert_allclose(res.short_exposure, [0.3, 0.3, 0.375], atol=1e-15)
    # nan_target="flat": B's NaN at t2 now means 0 → covers 0.015 units at 25 = 0.375 more.
    p_flat = BacktestParams(lag=0, price="close", capital=1.0, nan_target="flat")
    flat = run_backtest(w, None, close, adv, sig, params=p_flat, costs=cm)
    np.testing.assert_allclose(flat.turnover, [0.7, 0.0, 0.08 + 0.375], atol=1e-15)
    assert flat.short_exposure[-1] == 0.0
