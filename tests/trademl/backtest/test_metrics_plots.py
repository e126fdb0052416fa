"""Performance metrics on a hand-worked series; plots are valid PNGs without pyplot state."""

from __future__ import annotations

import datetime as dt
import math
import struct

import numpy as np
import pytest
from scipy import stats

from trademl.backtest import performance_metrics, run_backtest
from trademl.backtest.plots import drawdown_png, equity_png, rolling_ic_png, turnover_png
from trademl.validation.metrics import dsr, psr


def test_metrics_hand_worked() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.01])
    m = performance_metrics(r, turnover=np.array([0.5, 0.1, 0.2, 0.0, 0.2]))
    end = 1.01 * 0.98 * 1.03 * 1.0 * 1.01  # 1.02968894
    assert m["cagr"] == pytest.approx(end ** (252 / 5) - 1, rel=1e-12)
    mean = 0.03 / 5  # 0.006
    var = ((0.004**2) + (0.026**2) + (0.024**2) + (0.006**2) + (0.004**2)) / 4  # ddof = 1
    assert m["ann_vol"] == pytest.approx(math.sqrt(var * 252), rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean / math.sqrt(var) * math.sqrt(252), rel=1e-12)
    # Downside deviation against 0 over all 5 sessions: √(0.02² / 5).
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.0004 / 5) * math.sqrt(252), rel=1e-12)
    # Peak 1.01 after day 1, trough 1.01·0.98 after day 2: a 2 % drawdown.
    assert m["max_drawdown"] == pytest.approx(0.02, rel=1e-12)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.02, rel=1e-12)
    assert m["hit_rate"] == pytest.approx(3 / 4)  # the flat day does not count
    assert m["avg_turnover"] == pytest.approx(0.2)
    # PSR from the moments computed by hand (population moments, non-excess kurtosis).
    dev = r - mean
    m2, m3, m4 = (dev**2).mean(), (dev**3).mean(), (dev**4).mean()
    sr = mean / math.sqrt(var)
    expect_psr = psr(sr, 5, m3 / m2**1.5, m4 / m2**2)
    assert m["psr"] == pytest.approx(expect_psr, rel=1e-12)
    assert m["dsr"] == pytest.approx(expect_psr, rel=1e-12)  # one trial: no deflation


def test_dsr_deflates_with_trials() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0.0008, 0.01, 1000)
    one = performance_metrics(r)
    ten = performance_metrics(r, n_trials=10, trial_sharpes_or_var=0.002)
    sr = r.mean() / r.std(ddof=1)
    skew, kurt = stats.skew(r), stats.kurtosis(r, fisher=False)
    assert ten["dsr"] == pytest.approx(dsr(sr, 1000, skew, kurt, 10, 0.002), rel=1e-12)
    # Default: skill-less trials, Sharpe variance = the estimator's sampling variance.
    v0 = (1 - skew * sr + (kurt - 1) / 4 * sr**2) / 999
    dflt = performance_metrics(r, n_trials=100)
    assert dflt["dsr"] == pytest.approx(dsr(sr, 1000, skew, kurt, 100, v0), rel=1e-12)
    assert dflt["dsr"] < ten["dsr"] < one["dsr"] == pytest.approx(one["psr"])


def test_metrics_of_a_backtest_result_and_degenerate_input() -> None:
    rng = np.random.default_rng(1)
    t, n = 60, 4
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (t, n)), axis=0))
    res = run_backtest(
        rng.normal(0, 0.2, (t, n)), c, c, np.full((t, n), 1e6), np.full((t, n), 0.01)
    )
    m = performance_metrics(res)
    assert m["avg_turnover"] == pytest.approx(res.turnover.mean())
    assert m["cagr"] == pytest.approx(res.equity[-1] ** (252 / t) - 1)
    empty = performance_metrics(np.array([]))
    assert all(math.isnan(empty[k]) for k in ("cagr", "sharpe", "psr", "dsr", "max_drawdown"))
    flat = performance_metrics(np.zeros(10))
    assert flat["cagr"] == 0.0 and math.isnan(flat["sharpe"]) and math.isnan(flat["hit_rate"])
    with pytest.raises(ValueError, match="n_trials"):
        performance_metrics(np.zeros(3), n_trials=0)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def test_plots_are_png_and_leave_no_pyplot_state() -> None:
    from matplotlib._pylab_helpers import Gcf

    before = len(Gcf.get_all_fig_managers())
    rng = np.random.default_rng(2)
    n = 300
    dates = [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(n)]
    eq = np.cumprod(1 + rng.normal(0.0005, 0.01, n))
    bm = np.cumprod(1 + rng.normal(0.0003, 0.012, n))
    ic = rng.normal(0.03, 0.1, n)
    ic[::7] = np.nan
    pngs = [
        equity_png(eq, bm, dates),
        equity_png(eq),
        drawdown_png(eq, dates),
        rolling_ic_png(ic, dates, window=21),
        turnover_png(np.abs(rng.normal(0.2, 0.05, n))),
    ]
    for png in pngs:
        assert _png_size(png) == (800, 350)
        assert len(png) > 5_000  # something was drawn
    assert len(Gcf.get_all_fig_managers()) == before
    with pytest.raises(ValueError, match="benchmark has 3 values for 300"):
        equity_png(eq, bm[:3])
    with pytest.raises(ValueError, match="dates has 2 entries"):
        turnover_png(eq, dates[:2])
