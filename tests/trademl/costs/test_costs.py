"""Cost model: hand-worked bps, unit invariance, tiers by liquidity, the trade-list table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from trademl.costs import (
    CostModel,
    borrow_cost,
    cost_breakdown,
    liquidity_tiers,
    trade_costs,
)


def test_impact_is_20bps_at_2pct_vol_and_1pct_participation() -> None:
    # Y·σ·√(Q/ADV) = 1 · 0.02 · √0.01 = 0.02 · 0.1 = 0.002 = 20 bp of traded notional.
    m = CostModel(impact_coef=1.0)
    assert m.impact_rate(10_000, 1_000_000, 0.02) == pytest.approx(0.0020, rel=1e-12)
    # Y = 0.5, σ = 3 %, Q/ADV = 4 %: 0.5 · 0.03 · 0.2 = 0.003 = 30 bp; sells cost the same.
    m2 = CostModel(impact_coef=0.5)
    assert m2.impact_rate(-40_000, 1_000_000, 0.03) == pytest.approx(0.0030, rel=1e-12)


def test_breakdown_hand_worked_dollars() -> None:
    # $1,000,000 bought = 10,000 shares at $100, ADV 1,000,000 shares, σ = 2 %:
    # fee 1 bp = $100, half spread 5 bp = $500, impact 20 bp = $2,000,
    # auction 2 bp = $200 (auction fill), total $2,800; participation 1 %.
    m = CostModel(fee_bps=1.0, half_spread_bps=5.0, impact_coef=1.0, auction_slippage_bps=2.0)
    cb = cost_breakdown(m, 1_000_000.0, 10_000.0, 1_000_000.0, 0.02, auction=True)
    assert float(cb.fee) == pytest.approx(100.0)
    assert float(cb.spread) == pytest.approx(500.0)
    assert float(cb.impact) == pytest.approx(2_000.0)
    assert float(cb.auction) == pytest.approx(200.0)
    assert float(cb.total) == pytest.approx(2_800.0)
    assert float(cb.participation) == pytest.approx(0.01)
    # Not an auction fill: no auction slippage.
    cb2 = cost_breakdown(m, 1_000_000.0, 10_000.0, 1_000_000.0, 0.02, auction=False)
    assert float(cb2.auction) == 0.0
    assert float(cb2.total) == pytest.approx(2_600.0)


def test_quantity_and_adv_in_dollars_or_shares_agree() -> None:
    rng = np.random.default_rng(3)
    price = rng.uniform(5, 500, 50)
    shares = rng.uniform(-1e5, 1e5, 50)
    adv_sh = rng.uniform(1e5, 1e7, 50)
    sigma = rng.uniform(0.005, 0.05, 50)
    m = CostModel(fee_bps=0.3, impact_coef=0.8)
    a = cost_breakdown(m, shares * price, shares, adv_sh, sigma)
    b = cost_breakdown(m, shares * price, shares * price, adv_sh * price, sigma)
    np.testing.assert_allclose(a.total, b.total, rtol=1e-12)
    np.testing.assert_allclose(a.participation, b.participation, rtol=1e-12)
    # Impact grows like Q^1.5 in dollars: 4x the trade -> 8x the impact.
    c = cost_breakdown(m, 4 * shares * price, 4 * shares, adv_sh, sigma)
    np.testing.assert_allclose(c.impact, 8 * a.impact, rtol=1e-12)


def test_unknown_sigma_or_adv_is_charged_the_conservative_flat_rate() -> None:
    m = CostModel(unknown_impact_bps=50.0)
    rate = m.impact_rate(
        np.array([100.0, 100.0, 100.0, 0.0]),
        np.array([np.nan, 0.0, 1e6, np.nan]),
        np.array([0.02, 0.02, np.nan, 0.02]),
    )
    # Missing ADV, zero ADV, missing σ -> 50 bp; no trade -> nothing.
    np.testing.assert_allclose(rate, [0.005, 0.005, 0.005, 0.0])
    cb = cost_breakdown(m, np.array([1e4, 1e4]), np.array([100.0, 100.0]), [np.nan, 1e4], 0.01)
    assert np.isnan(cb.participation[0])
    assert cb.participation[1] == pytest.approx(0.01)


def test_borrow_by_tier_with_252_day_count() -> None:
    m = CostModel(borrow_bps_tiers=(50.0, 100.0, 200.0))
    # $1,000,000 short for one session: tier 0 -> 1e6 · 0.005 / 252 = 19.8413 ...,
    # tier 2 -> 1e6 · 0.02 / 252 = 79.365 ...
    out = borrow_cost(m, np.array([-1e6, -1e6, 1e6]), np.array([0, 2, 1]))
    np.testing.assert_allclose(out, [5000 / 252, 20000 / 252, 10000 / 252])
    m2 = CostModel(borrow_bps_tiers=(365.0,), days_per_year=365.0)
    assert float(borrow_cost(m2, 1e4, 0)) == pytest.approx(1.0)  # 365 bp / 365 days on $10k
    with pytest.raises(ValueError, match=r"borrow tiers must lie in \[0, 2\]"):
        borrow_cost(m, np.array([1.0]), np.array([3]))


def test_liquidity_tiers_terciles_and_missing() -> None:
    # Ascending ranks 10→0, 20→1, …, 60→5; bucket ⌊r·3/6⌋ = r // 2; tier = 2 − bucket.
    adv = np.array([10.0, 60.0, 30.0, 50.0, 20.0, 40.0])
    np.testing.assert_array_equal(liquidity_tiers(adv), [2, 0, 1, 0, 2, 1])
    # 7 names: ⌊r·3/7⌋ for r = 0..6 is 0,0,0,1,1,2,2; NaN and 0 ADV -> least liquid tier.
    adv7 = np.array([7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, np.nan, 0.0])
    np.testing.assert_array_equal(liquidity_tiers(adv7), [0, 0, 1, 1, 2, 2, 2, 2, 2])
    # 2-D: each row on its own.
    mat = np.vstack([adv, adv[::-1]])
    np.testing.assert_array_equal(liquidity_tiers(mat), [[2, 0, 1, 0, 2, 1], [1, 2, 0, 1, 0, 2]])
    assert liquidity_tiers(np.array([5.0]), 3).tolist() == [2]  # r = 0 of k = 1: bucket 0
    assert liquidity_tiers(np.full(4, np.nan)).tolist() == [2, 2, 2, 2]


def test_liquidity_tiers_match_rank_definition_on_random_rows() -> None:
    rng = np.random.default_rng(11)
    a = rng.lognormal(15, 2, size=(20, 37))
    a[rng.random(a.shape) < 0.1] = np.nan
    got = liquidity_tiers(a, 4)
    for i in range(a.shape[0]):
        ok = np.isfinite(a[i])
        k = ok.sum()
        r = np.empty(k, dtype=int)
        r[np.argsort(a[i, ok])] = np.arange(k)
        expect = np.full(a.shape[1], 3)
        expect[ok] = 3 - (r * 4) // k
        np.testing.assert_array_equal(got[i], expect)


def test_cost_model_validation() -> None:
    with pytest.raises(ValueError, match="half_spread_bps"):
        CostModel(half_spread_bps=-1.0)
    with pytest.raises(ValueError, match="borrow_bps_tiers"):
        CostModel(borrow_bps_tiers=())
    with pytest.raises(ValueError, match="days_per_year"):
        CostModel(days_per_year=0.0)


def test_trade_costs_table_per_name() -> None:
    m = CostModel(fee_bps=1.0, half_spread_bps=5.0, auction_slippage_bps=2.0)
    trades = pl.DataFrame(
        {
            "symbol": ["AAA", "BBB"],
            "notional": [1_000_000.0, -500_000.0],
            "shares": [10_000.0, -40_000.0],
            "adv": [1_000_000.0, 1_000_000.0],
            "sigma": [0.02, 0.03],
            "moc": [True, False],
        }
    )
    out = trade_costs(trades, m, auction="moc")
    assert out.columns == [
        "symbol",
        "notional",
        "shares",
        "participation",
        "fee",
        "spread",
        "impact",
        "auction",
        "total",
        "total_bps",
    ]
    # AAA: 1 + 5 + 20 + 2 = 28 bp of $1M = $2,800.
    # BBB: σ √(4 %) = 0.03 · 0.2 = 60 bp; 1 + 5 + 60 = 66 bp of $500k = $3,300.
    np.testing.assert_allclose(out["impact"].to_numpy(), [2_000.0, 3_000.0])
    np.testing.assert_allclose(out["total"].to_numpy(), [2_800.0, 3_300.0])
    np.testing.assert_allclose(out["total_bps"].to_numpy(), [28.0, 66.0])
    np.testing.assert_allclose(out["participation"].to_numpy(), [0.01, 0.04])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['sigma'\]"):
        trade_costs(trades.drop("sigma"), m)
    bad = trades.with_columns(pl.Series("notional", [1.0, float("nan")]))
    with pytest.raises(ValueError, match="'notional' is not finite for symbol 'BBB'"):
        trade_costs(bad, m)


def test_reduce_axis_sums_match_per_trade_breakdown() -> None:
    rng = np.random.default_rng(4)
    n = np.abs(rng.normal(size=(6, 8)))
    n[rng.random(n.shape) < 0.3] = 0.0
    q = n * 1e4
    adv = rng.uniform(1e4, 1e6, n.shape)
    adv[0, 0] = np.nan
    sig = rng.uniform(0.01, 0.03, n.shape)
    m = CostModel(fee_bps=0.7, half_spread_bps=3.0, auction_slippage_bps=1.5)
    for auction in (True, rng.random(n.shape) < 0.5):
        full = cost_breakdown(m, n, q, adv, sig, auction=auction)
        red = cost_breakdown(m, n, q, adv, sig, auction=auction, reduce_axis=1)
        for key in ("fee", "spread", "impact", "auction", "total"):
            np.testing.assert_allclose(getattr(red, key), getattr(full, key).sum(1), rtol=1e-12)
        np.testing.assert_array_equal(red.participation, full.participation)
