"""Almgren–Chriss calibration, the slice plan and the feature-drift flag."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trademl.execution.orders import Order
from trademl.execution.session import ac_params, feature_drift, slice_plan

SESSION = dt.date(2024, 3, 5)


def test_ac_params_follow_the_papers_calibration() -> None:
    # $50 stock, 2% daily vol, ADV 1M shares, 5 bps half spread → spread $0.05
    p = ac_params(50.0, 0.02, 1e6, half_spread_bps=5.0, fee_bps=1.0, risk_aversion=2e-6)
    assert p.sigma == pytest.approx(1.0)  # $/share/√day
    assert p.eta == pytest.approx(0.05 / 1e4)  # one spread per 1% of ADV in a day
    assert p.gamma == pytest.approx(0.05 / 1e5)  # one spread per 10% of ADV, permanent
    assert p.epsilon == pytest.approx(0.025 + 0.005)
    assert p.risk_aversion == 2e-6
    with pytest.raises(ValueError, match="adv > 0"):
        ac_params(50.0, 0.02, 0.0, half_spread_bps=5.0)


def test_slice_plan_sums_to_each_parent_and_front_loads_with_risk_aversion() -> None:
    orders = [
        Order(session=SESSION, symbol="AAA", side="buy", qty=10_000, ref_price=50.0),
        Order(session=SESSION, symbol="BBB", side="sell", qty=333, ref_price=20.0),
    ]
    start = dt.datetime(2024, 3, 6, 9, 30, tzinfo=dt.UTC)
    end = dt.datetime(2024, 3, 6, 16, 0, tzinfo=dt.UTC)
    risk = {"AAA": (0.03, 2e4)}  # BBB has no risk estimate → TWAP
    plan = slice_plan(
        orders,
        risk,
        start=start,
        end=end,
        n_slices=5,
        method="almgren_chriss",
        half_spread_bps=5.0,
        risk_aversion=1e-4,
    )
    per = plan.group_by("symbol").agg(pl.col("qty").sum(), pl.col("method").first())
    assert dict(per.select("symbol", "qty").iter_rows()) == {"AAA": 10_000, "BBB": 333}
    assert dict(per.select("symbol", "method").iter_rows()) == {
        "AAA": "almgren_chriss",
        "BBB": "twap",
    }
    aaa = plan.filter(pl.col("symbol") == "AAA").get_column("qty").to_numpy()
    assert (np.diff(aaa) <= 0).all() and aaa[0] > aaa[-1]  # a risk-averse trader front-loads
    bbb = plan.filter(pl.col("symbol") == "BBB").get_column("qty").to_numpy()
    assert bbb.max() - bbb.min() <= 1  # TWAP: equal slices up to one share


def _features(scale_last: float = 1.0, shift_last: float = 0.0, drop_last: int = 0):
    rng = np.random.default_rng(0)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(40)]
    rows = []
    for i, d in enumerate(days):
        last = i == len(days) - 1
        for s in range(20):
            x = rng.normal() * (scale_last if last else 1.0) + (shift_last if last else 0.0)
            if last and s < drop_last:
                x = None
            rows.append((d, f"S{s}", x, rng.normal(), rng.normal() * 100))
    return pl.DataFrame(
        rows, schema=["date", "symbol", "mom_20", "dow_sin", "xs_z_mom_20"], orient="row"
    )


def test_feature_drift_flags_broken_data_not_market_moves() -> None:
    last = dt.date(2024, 2, 9)
    calm, detail = feature_drift(_features(), last, threshold=8.0)
    assert not calm and "mom_20" in detail
    # a market-wide move shifts the mean only: a regime, not broken data
    assert feature_drift(_features(shift_last=10.0), last, threshold=8.0)[0] is False
    # a unit change (×100) blows up the dispersion
    flagged, detail = feature_drift(_features(scale_last=100.0), last, threshold=8.0)
    assert flagged and detail.startswith("largest shift: mom_20 log dispersion")
    # a quarter of the names lose the feature
    flagged, detail = feature_drift(_features(drop_last=5), last, threshold=8.0)
    assert flagged and "mom_20 missing share" in detail
    # calendar and per-session standardized features are never judged
    assert "dow_sin" not in detail and "xs_z" not in detail
    # too little history cannot judge; a session without features halts
    assert feature_drift(_features(scale_last=100.0).tail(100), last, threshold=8.0)[0] is False
    assert feature_drift(_features(), dt.date(2025, 1, 1), threshold=8.0)[0] is True


def test_slice_plan_is_slice_order_on_every_parent() -> None:
    """The all-parents-at-once plan has exactly the children `slice_order` makes of each
    parent (AC and its flat limit, TWAP where σ/ADV are missing, NaN or zero)."""
    from trademl.execution.schedule import slice_order

    rng = np.random.default_rng(11)
    symbols = [f"S{i:03d}" for i in range(400)]
    orders = [
        Order(
            session=SESSION,
            symbol=sym,
            side=("buy", "sell")[i % 2],
            qty=int(rng.integers(1, 200_000)),
            ref_price=float(rng.uniform(1.0, 900.0)),
        )
        for i, sym in enumerate(symbols)
    ]
    risk: dict[str, tuple[float, float]] = {}
    for i, sym in enumerate(symbols):
        if i % 7 == 0:
            continue  # no estimate: TWAP
        sigma = [float("nan"), 0.0, float(rng.uniform(0.005, 0.08))][min(i % 11, 2)]
        adv = 0.0 if i % 13 == 0 else float(rng.uniform(1e3, 5e7))
        risk[sym] = (sigma, adv)
    start = dt.datetime(2024, 3, 6, 14, 30, tzinfo=dt.UTC)
    end = dt.datetime(2024, 3, 6, 21, 0, tzinfo=dt.UTC)
    for n, aversion in ((13, 1e-6), (5, 1e-3), (1, 1e-6)):
        got = slice_plan(
            orders,
            risk,
            start=start,
            end=end,
            n_slices=n,
            method="almgren_chriss",
            half_spread_bps=5.0,
            fee_bps=1.0,
            risk_aversion=aversion,
        )
        rows = []
        for o in orders:
            sigma, adv = risk.get(o.symbol, (float("nan"), float("nan")))
            known = np.isfinite([sigma, adv]).all() and adv > 0 and sigma >= 0
            params = (
                ac_params(
                    o.ref_price,
                    sigma,
                    adv,
                    half_spread_bps=5.0,
                    fee_bps=1.0,
                    risk_aversion=aversion,
                )
                if known
                else None
            )
            for c in slice_order(
                o, start=start, end=end, n_slices=n, method="ac" if known else "twap", params=params
            ):
                rows.append(
                    (
                        c.parent_id,
                        c.order.client_order_id,
                        o.symbol,
                        o.side,
                        c.index,
                        c.at.isoformat(timespec="minutes"),
                        c.order.qty,
                        "almgren_chriss" if known else "twap",
                    )
                )
        assert got.rows() == rows
        assert {m for *_, m in rows} == {"almgren_chriss", "twap"}
