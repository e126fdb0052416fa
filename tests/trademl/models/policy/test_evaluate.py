"""Out-of-sample evaluation: per-session PnL with costs by hand, baselines, metric wiring."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from tests.trademl.models.policy.synthetic import planted_frame
from trademl.models.policy import (
    GRPOParams,
    GRPOSizer,
    baseline_positions,
    evaluate_policy,
    evaluate_positions,
    session_pnl,
)
from trademl.validation.metrics import max_drawdown, sharpe

# rows deliberately out of order; B has no row in session 1 (its s2 cost is against s0)
FRAME = pl.DataFrame(
    {
        "session": [2, 0, 1, 0, 2],
        "symbol": ["A", "A", "A", "B", "B"],
        "y_hat": [0.01, 0.02, -0.01, 0.03, 0.01],
        "vol": [0.01, 0.04, 0.005, 0.02, 0.01],
        "trend": [0.0] * 5,
        "y": [-0.01, 0.01, 0.02, -0.01, 0.03],
    }
)
POS = np.array([0.5, 1.0, -1.0, 2.0, 2.0])
# by hand at 10 bp per unit of |Δpos|:
# A: s0 0.01 − 0.001·1 = 0.009; s1 −0.02 − 0.001·2 = −0.022; s2 −0.005 − 0.001·1.5 = −0.0065
# B: s0 −0.02 − 0.001·2 = −0.022; s2 0.06 − 0 = 0.06
PNL = np.array([(0.009 - 0.022) / 2, -0.022, (-0.0065 + 0.06) / 2])
TURNOVER = np.array([1.5, 2.0, 0.75])


def test_session_pnl_by_hand() -> None:
    out = session_pnl(FRAME, POS, cost_bps=10.0)
    assert out.get_column("session").to_list() == [0, 1, 2]
    np.testing.assert_allclose(out.get_column("pnl").to_numpy(), PNL, atol=1e-15)
    np.testing.assert_allclose(out.get_column("turnover").to_numpy(), TURNOVER, atol=1e-15)
    assert out.get_column("n").to_list() == [2, 1, 2]


def test_nan_position_is_flat() -> None:
    pos = POS.copy()
    pos[2] = np.nan  # A flat in session 1: pays 1 to close, then 0.5 to reopen
    out = session_pnl(FRAME, pos, cost_bps=10.0)
    a1 = -0.001
    a2 = -0.005 - 0.0005
    np.testing.assert_allclose(out.get_column("pnl").to_numpy()[1:], [a1, (a2 + 0.06) / 2])


def test_evaluate_positions_uses_the_governance_metrics() -> None:
    res = evaluate_positions(FRAME, {"x": POS}, cost_bps=10.0, periods_per_year=252)
    row = res.row(0, named=True)
    assert row["strategy"] == "x" and row["n_sessions"] == 3
    assert row["sharpe"] == pytest.approx(sharpe(PNL, 252))
    assert row["max_drawdown"] == pytest.approx(max_drawdown(PNL))
    assert row["mean_pnl"] == pytest.approx(PNL.mean())
    assert row["turnover"] == pytest.approx(TURNOVER.mean())


def test_baselines() -> None:
    base = baseline_positions(FRAME, target_vol=0.02)
    np.testing.assert_array_equal(base["long_1"], np.ones(5))
    np.testing.assert_array_equal(base["sign"], [1, 1, -1, 1, 1])
    # min(0.02 / vol, 2) along the forecast: vols 0.01, 0.04, 0.005, 0.02, 0.01
    np.testing.assert_allclose(base["vol_target"], [2.0, 0.5, -2.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="target_vol"):
        baseline_positions(FRAME, target_vol=0.0)


def test_evaluate_policy_needs_sessions_after_validation() -> None:
    frame, _ = planted_frame(5, 60, seed=0)
    params = GRPOParams(hidden=(4,), epochs=1, batch_size=128, num_threads=1)
    model = GRPOSizer(params=params).fit(frame)
    with pytest.raises(ValueError, match="out-of-sample"):
        evaluate_policy(model, frame)
    later, _ = planted_frame(5, 30, seed=1, start=60)
    res = evaluate_policy(model, later)
    assert res.get_column("strategy").to_list() == ["policy", "long_1", "sign", "vol_target"]
    assert res.get_column("n_sessions").to_list() == [30] * 4
    # vol_target's default target is the median training vol
    tv = float(np.median(frame.filter(pl.col("session") <= model.train_end_)["vol"]))
    assert model.vol_target_ == pytest.approx(tv)
    cheaper = dataclasses.replace(params, cost_bps=0.0)
    model.params = cheaper
    res0 = evaluate_policy(model, later)
    assert (res0["mean_pnl"] > res["mean_pnl"]).all()  # every strategy trades at least once


def test_positions_must_align_with_rows() -> None:
    with pytest.raises(ValueError, match="one value per frame row"):
        session_pnl(FRAME, POS[:3], cost_bps=1.0)
