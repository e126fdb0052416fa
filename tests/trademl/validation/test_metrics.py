"""Governance metrics: hand-worked examples, scipy cross-checks and the papers' numbers."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from trademl.validation.metrics import (
    brier_score,
    dsr,
    dsr_from_returns,
    expected_max_sharpe,
    ic_by_session,
    ic_summary,
    long_short_returns,
    max_drawdown,
    pbo,
    psr,
    reliability_bins,
    sharpe,
)

# ------------------------------------------------------------------------------------ IC


def test_ic_hand_example_3_sessions_x_4_symbols() -> None:
    d = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    session = pl.Series([d[2]] * 4 + [d[0]] * 4 + [d[1]] * 4)  # unsorted on purpose
    pred = np.array([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], dtype=float)
    y = np.array([1, 3, 2, 4, 1, 2, 3, 4, 4, 3, 2, 1], dtype=float)
    out = ic_by_session(pred, y, session)
    assert out.columns == ["session", "ic", "rank_ic", "n"]
    assert out.get_column("session").to_list() == d
    # d0: identical -> 1; d1: reversed -> -1; d2: deviations (-1.5,-.5,.5,1.5) vs
    # (-1.5,.5,-.5,1.5): cov 4 / var 5 = 0.8 for both Pearson and Spearman.
    np.testing.assert_allclose(out["ic"].to_numpy(), [1.0, -1.0, 0.8])
    np.testing.assert_allclose(out["rank_ic"].to_numpy(), [1.0, -1.0, 0.8])
    assert out["n"].to_list() == [4, 4, 4]


def test_ic_matches_scipy_with_ties_and_nans() -> None:
    rng = np.random.default_rng(1)
    n_s, n_x = 6, 40
    session = np.repeat(np.arange(n_s), n_x)
    pred = np.round(rng.normal(size=n_s * n_x), 1)  # rounding creates ties
    y = 0.3 * pred + rng.normal(size=n_s * n_x)
    pred[::17] = np.nan
    y[::23] = np.inf
    out = ic_by_session(pred, y, session)
    for s in range(n_s):
        m = (session == s) & np.isfinite(pred) & np.isfinite(y)
        row = out.row(s, named=True)
        assert row["n"] == m.sum()
        assert row["ic"] == pytest.approx(stats.pearsonr(pred[m], y[m])[0], abs=1e-12)
        assert row["rank_ic"] == pytest.approx(stats.spearmanr(pred[m], y[m])[0], abs=1e-12)


def test_ic_nan_for_small_or_constant_sessions() -> None:
    session = ["a"] * 2 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4
    pred = [1, 2, 5, 5, 5, 5, 1, 2, 3, 4, 1, 2, np.nan, np.nan]
    y = [1, 2, 1, 2, 3, 4, 7, 7, 7, 7, 1, 2, 3, 4]
    out = ic_by_session(pred, y, session)
    assert out["n"].to_list() == [2, 4, 4, 2]
    assert out["ic"].is_nan().all() and out["rank_ic"].is_nan().all()


def test_ic_summary() -> None:
    per = pl.DataFrame({"ic": [0.1, 0.3, np.nan, 0.2], "rank_ic": [0.5, np.nan, np.nan, np.nan]})
    s = ic_summary(per)
    v = np.array([0.1, 0.3, 0.2])
    assert s["ic_mean"] == pytest.approx(0.2)
    assert s["ic_std"] == pytest.approx(v.std(ddof=1))
    assert s["ic_icir"] == pytest.approx(0.2 / 0.1)
    assert s["ic_t_stat"] == pytest.approx(2.0 * math.sqrt(3))
    assert s["ic_n_sessions"] == 3
    assert s["rank_ic_mean"] == 0.5 and s["rank_ic_n_sessions"] == 1
    assert math.isnan(s["rank_ic_std"]) and math.isnan(s["rank_ic_t_stat"])


def test_ic_vectorized_on_a_large_panel() -> None:
    rng = np.random.default_rng(0)
    t, n = 300, 200
    session = np.repeat(np.arange(t), n)
    pred = rng.normal(size=t * n)
    y = 0.1 * pred + rng.normal(size=t * n)
    s = ic_summary(ic_by_session(pred, y, session))
    assert s["ic_n_sessions"] == t
    assert 0.05 < s["ic_mean"] < 0.15 and s["rank_ic_t_stat"] > 10


# ---------------------------------------------------------------------- long-short, Sharpe, DD


def test_long_short_hand_example() -> None:
    fwd = [-0.02, -0.01, 0.0, 0.01, 0.0, 0.0, 0.0, 0.01, 0.03, 0.05]
    session = ["s1"] * 10 + ["s2"] * 4
    pred = [*range(10), 1.0, 2.0, 3.0, 4.0]
    out = long_short_returns(pred, [*fwd, 0.1, 0.1, 0.1, 0.1], session)
    r1 = out.row(0, named=True)
    # Top 2 by pred earn (0.03 + 0.05)/2, bottom 2 earn (-0.02 - 0.01)/2: gross 0.055.
    # Cost: 2 legs x open+close x 2.5 bp half-spread = 10 bp.
    assert (r1["n"], r1["n_leg"]) == (10, 2)
    assert r1["long_ret"] == pytest.approx(0.04) and r1["short_ret"] == pytest.approx(-0.015)
    assert r1["gross"] == pytest.approx(0.055) and r1["cost"] == pytest.approx(0.001)
    assert r1["ret"] == pytest.approx(0.054)
    r2 = out.row(1, named=True)  # 4 names: floor(0.2 * 4) = 0 per leg -> no portfolio
    assert r2["n_leg"] == 0 and math.isnan(r2["ret"])
    half = long_short_returns(pred, [*fwd, 0, 0, 0, 0], session, turnover=1.0, spread_bps=10)
    assert half["cost"][0] == pytest.approx(0.001)
    with pytest.raises(ValueError):
        long_short_returns(pred, [*fwd, 0, 0, 0, 0], session, quantile=0.6)


def test_sharpe_annualization() -> None:
    r = [0.01, 0.02, 0.03, 0.0]
    per_period = 0.015 / math.sqrt(5e-4 / 3)
    assert sharpe(r, 1) == pytest.approx(per_period)
    assert sharpe(r) == pytest.approx(per_period * math.sqrt(252))
    assert sharpe(r, 252 / 5) == pytest.approx(per_period * math.sqrt(50.4))  # 5-session returns
    assert math.isnan(sharpe([0.01])) and math.isnan(sharpe([0.01, 0.01, np.nan]))


def test_max_drawdown_hand_example() -> None:
    # Equity 1, 1.1, 0.88, 0.924, 0.462, 0.924: peak 1.1, trough 0.462.
    assert max_drawdown([0.1, -0.2, 0.05, -0.5, 1.0]) == pytest.approx(1 - 0.462 / 1.1)
    assert max_drawdown([-0.1]) == pytest.approx(0.1)
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert max_drawdown([0.5, -1.0]) == 1.0
    assert math.isnan(max_drawdown([]))


# ---------------------------------------------------------------------------------- PSR, DSR


@pytest.mark.parametrize(
    ("sr", "n", "sk", "ku", "bench"),
    [(0.1, 250, 0.0, 3.0, 0.0), (0.05, 1000, -1.0, 6.0, 0.02), (-0.03, 60, 0.5, 4.0, 0.0)],
)
def test_psr_matches_formula(sr: float, n: int, sk: float, ku: float, bench: float) -> None:
    z = (sr - bench) * np.sqrt(n - 1) / np.sqrt(1 - sk * sr + (ku - 1) / 4 * sr**2)
    assert psr(sr, n, sk, ku, bench) == pytest.approx(stats.norm.cdf(z), abs=1e-12)


def test_psr_edge_cases() -> None:
    assert psr(0.1, 100, 0.0, 3.0, 0.1) == pytest.approx(0.5)
    assert math.isnan(psr(0.1, 1, 0.0, 3.0))
    assert math.isnan(psr(float("nan"), 100, 0.0, 3.0))
    assert math.isnan(psr(1.0, 100, 5.0, 1.0))  # non-positive variance term


def test_dsr_reproduces_bailey_lopez_de_prado_2014_example() -> None:
    # Annualized SR 2.5, V[SR] 0.5, 250 sessions/year, T 1250, skew -3, kurtosis 10, N 100.
    sr_d, var_d = 2.5 / math.sqrt(250), 0.5 / 250
    sr0 = expected_max_sharpe(var_d, 100)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    assert dsr(sr_d, 1250, -3.0, 10.0, 100, var_d) == pytest.approx(0.9004, abs=1e-3)
    assert expected_max_sharpe(var_d, 1) == 0.0
    assert expected_max_sharpe(var_d, 1000) > sr0


def test_dsr_from_returns_uses_sample_moments() -> None:
    rng = np.random.default_rng(3)
    r = 0.001 + 0.01 * rng.standard_t(5, size=1000)
    trials = rng.normal(0.0, 0.03, size=50)
    expected = dsr(
        r.mean() / r.std(ddof=1),
        r.size,
        stats.skew(r),
        stats.kurtosis(r, fisher=False),
        50,
        trials.var(ddof=1),
    )
    assert dsr_from_returns(r, 50, trials) == pytest.approx(expected)
    assert dsr_from_returns(r, 50, float(trials.var(ddof=1))) == pytest.approx(expected)
    assert math.isnan(dsr_from_returns(r[:2], 50, 0.001))
    assert math.isnan(dsr_from_returns(r, 50, trials[:1]))


# ---------------------------------------------------------------------------------------- PBO


def test_pbo_pure_noise_is_about_one_half() -> None:
    vals = []
    for seed in range(20):
        perf = np.random.default_rng(seed).normal(0.0, 0.01, size=(320, 20))
        res = pbo(perf, n_partitions=16)
        assert res.n_combinations == 12870 and res.logits.shape == (12870,)
        assert ((res.oos_rank > 0) & (res.oos_rank < 1)).all()
        vals.append(res.pbo)
    assert abs(np.mean(vals) - 0.5) < 0.1


def test_pbo_strong_strategy_is_not_overfit() -> None:
    perf = np.random.default_rng(7).normal(0.0, 0.01, size=(1000, 20))
    perf[:, 3] += 0.003  # per-period Sharpe 0.3 among noise
    res = pbo(perf, n_partitions=16)
    assert res.pbo < 0.05
    assert (res.best_is == 3).mean() > 0.95 and res.prob_oos_loss < 0.05


def test_pbo_hand_checked_ranks_and_edge_cases() -> None:
    perf = np.random.default_rng(0).normal(0.0, 1.0, size=(40, 4))
    perf[:, 0] = 5.0  # constant: zero std, never picked
    res = pbo(perf, n_partitions=2)
    assert res.n_combinations == 2 and not (res.best_is == 0).any()
    # Split 0: IS = first 20 rows; rank the IS-best OOS by hand.
    is_, oos = perf[:20, 1:], perf[20:, 1:]
    sr_is, sr_oos = is_.mean(0) / is_.std(0, ddof=1), oos.mean(0) / oos.std(0, ddof=1)
    b = int(np.argmax(sr_is))
    rank = 1 + (sr_oos < sr_oos[b]).sum() + 1  # +1 for the constant column, ranked last
    assert res.oos_rank[0] == pytest.approx(rank / 5)
    assert res.logits[0] == pytest.approx(math.log(rank / (5 - rank)))
    with pytest.raises(ValueError):
        pbo(perf, n_partitions=15)
    with pytest.raises(ValueError):
        pbo(perf[:, 0], n_partitions=2)
    assert math.isnan(pbo(perf[:20], n_partitions=16).pbo)  # fewer than 2 rows per block
    assert math.isnan(pbo(perf[:, :1], n_partitions=2).pbo)  # a single strategy
    bad = perf.copy()
    bad[3, 2] = np.nan
    assert math.isnan(pbo(bad, n_partitions=2).pbo)


# -------------------------------------------------------------------------------- calibration


def test_calibration_perfect() -> None:
    prob = [0.25] * 4 + [0.75] * 4
    outcome = [1, 0, 0, 0, 1, 1, 1, 0]
    # Each group: one miss at 0.75^2 and three at 0.25^2 -> 0.75 per 4 rows.
    assert brier_score(prob, outcome) == pytest.approx(1.5 / 8)
    rb = reliability_bins(prob, outcome, n_bins=4)
    assert rb.columns == ["bin_lo", "bin_hi", "mean_pred", "frac_pos", "count"]
    assert rb["count"].to_list() == [0, 4, 0, 4]
    np.testing.assert_allclose(rb["bin_lo"].to_numpy(), [0, 0.25, 0.5, 0.75])
    got = rb.filter(pl.col("count") > 0)
    np.testing.assert_allclose(got["mean_pred"].to_numpy(), got["frac_pos"].to_numpy())
    assert rb["mean_pred"][0] is not None and math.isnan(rb["mean_pred"][0])


def test_calibration_constant_predictor_and_edges() -> None:
    outcome = np.array([1, 0, 0, 1, 1, 0, 0, 0, 1, 0])
    assert brier_score(np.full(10, 0.5), outcome) == pytest.approx(0.25)
    rb = reliability_bins(np.full(10, 0.5), outcome)
    row = rb.filter(pl.col("count") > 0).row(0, named=True)
    assert (row["bin_lo"], row["count"]) == (pytest.approx(0.5), 10)
    assert row["frac_pos"] == pytest.approx(0.4) and row["mean_pred"] == pytest.approx(0.5)
    assert reliability_bins([0.0, 1.0], [0, 1])["count"].to_list() == [1] + [0] * 8 + [1]
    assert brier_score([1.0, 0.0, np.nan], [1, 0, 1]) == 0.0
    assert math.isnan(brier_score([], []))
    with pytest.raises(ValueError):
        brier_score([1.2], [1])
    with pytest.raises(ValueError):
        brier_score([0.2], [2])


def test_moments_match_scipy_and_a_hand_worked_series():
    """Biased skewness and non-excess kurtosis, as scipy.stats' defaults compute them."""
    from scipy import stats

    from trademl.validation.metrics import moments

    # [1, 2, 3, 10]: mean 4, deviations (-3, -2, -1, 6): m2 = 12.5, m3 = 45, m4 = 348.5
    skew, kurt = moments(np.array([1.0, 2.0, 3.0, 10.0]))
    assert skew == pytest.approx(45 / 12.5**1.5)
    assert kurt == pytest.approx(348.5 / 12.5**2)
    r = np.random.default_rng(3).standard_t(4, size=500)
    assert moments(r) == pytest.approx((stats.skew(r), stats.kurtosis(r, fisher=False)))
    assert all(np.isnan(moments(np.array([1.0, 1.0, 1.0]))))
    assert all(np.isnan(moments(np.array([1.0, 2.0]))))
