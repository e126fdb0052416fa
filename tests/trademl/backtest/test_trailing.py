"""The report's trailing backtest: realized rank IC timing, benchmark, and the report files."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from trademl.backtest import BacktestParams, performance_metrics
from trademl.backtest.report import report_markdown, session_report, write_report
from trademl.backtest.trailing import backtest_window, trailing_backtest
from trademl.costs import CostModel

T, N = 30, 6
SESSIONS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(T)]
SYMS = [f"S{j}" for j in range(N)]


def _market(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, (T, N)))
    return open_, close


def _long(mat: np.ndarray, name: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": pl.Series([d for d in SESSIONS for _ in range(N)], dtype=pl.Date),
            "symbol": SYMS * T,
            name: mat.reshape(-1),
        }
    )


def _run(score: np.ndarray) -> pl.DataFrame:
    open_, close = _market()
    bars = _long(open_, "open").join(_long(close, "close"), on=["date", "symbol"])
    weights = _long(np.sign(score - np.median(score, axis=1, keepdims=True)) * 0.1, "weight").join(
        _long(score, "score"), on=["date", "symbol"]
    )
    risk = _long(np.full((T, N), 0.02), "sigma").join(
        _long(np.full((T, N), 1e6), "adv"), on=["date", "symbol"]
    )
    out = trailing_backtest(
        weights, bars, risk, SESSIONS, params=BacktestParams(lag=1), costs=CostModel()
    )
    return out.frame, out.metrics, open_, close


def test_rank_ic_scores_the_return_the_decision_earned_and_only_once_it_is_known() -> None:
    open_, _ = _market()
    earned = np.full((T, N), np.nan)
    earned[:-2] = open_[2:] / open_[1:-1] - 1.0  # decided at s, filled at s+1's open
    frame, metrics, _, close = _run(np.nan_to_num(earned, nan=0.0))
    ic = frame.get_column("rank_ic").to_numpy()
    np.testing.assert_allclose(ic[:-2], 1.0)
    assert np.isnan(ic[-2:]).all()  # not yet realized at the window's end
    assert metrics["rank_ic_mean"] == pytest.approx(1.0)
    # the equal-weight benchmark compounds the mean close-to-close return
    mkt = np.concatenate([[0.0], (close[1:] / close[:-1] - 1.0).mean(axis=1)])
    np.testing.assert_allclose(frame.get_column("benchmark_equity"), np.cumprod(1 + mkt))


def test_a_same_day_signal_earns_no_special_ic() -> None:
    _, close = _market()
    same_day = np.zeros((T, N))
    same_day[1:] = close[1:] / close[:-1] - 1.0
    frame, *_ = _run(same_day)
    ic = frame.get_column("rank_ic").drop_nans().to_numpy()
    assert abs(ic.mean()) < 3 * ic.std(ddof=1) / np.sqrt(ic.size)


def test_report_files(tmp_path) -> None:
    _, metrics, _, _ = _run(np.random.default_rng(3).normal(size=(T, N)))
    day = pl.DataFrame(
        {
            "symbol": ["A", "B", "C"],
            "weight": [0.05, -0.05, 0.0],
            "score": [1.0, -1.0, 0.0],
            "sigma": [0.02] * 3,
            "source": ["equities_xs@4"] * 3,
        }
    )
    costs = pl.DataFrame({"notional": [5000.0, -5000.0], "total": [3.0, 2.0], "spread": [2.5, 2.5]})
    rep = session_report(
        session=dt.date(2024, 1, 30),
        weights=day,
        trade_costs=costs,
        backtest_metrics=metrics,
        forecast_vol=0.1,
        model_versions={"equities_xs": "4"},
        qc_status="GREEN",
        book_capital=100_000.0,
    )
    assert rep["positions"] == {"long": 1, "short": 1, "gross": 0.1, "net": 0.0}
    assert rep["expected_costs"]["total"] == 5.0
    assert rep["expected_costs"]["bps_of_traded"] == pytest.approx(5.0)  # 5 / 10,000 = 5 bps
    assert [r["symbol"] for r in rep["top_longs"]] == ["A"]
    paths = write_report(tmp_path, rep, {"equity": b"\x89PNG fake"})
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(rep, sort_keys=True))
    assert paths["md"].read_text() == report_markdown(rep)
    assert "| A | 5.00% |" in paths["md"].read_text()
    # the costs say whose trades they are, in dollars
    assert (
        "| expected cost of the model book's trades (a $100,000.00 book, from the previous "
        "session's targets) | $5.00 (5 bps of $10,000.00 traded) |" in paths["md"].read_text()
    )
    assert paths["equity"].name == "equities_2024-01-30_equity.png"


def test_dsr_of_a_searched_signal_is_deflated_below_its_psr() -> None:
    """Same returns: one trial → DSR = PSR; twenty skill-less trials → a lower DSR."""
    r = np.random.default_rng(5).normal(0.0008, 0.01, 500)
    one, many = performance_metrics(r), performance_metrics(r, n_trials=20)
    assert one["dsr"] == one["psr"]
    assert many["psr"] == one["psr"] and many["dsr"] < one["dsr"] - 0.05


def test_backtest_window_starts_at_the_first_position() -> None:
    days = SESSIONS[:10]
    w = pl.DataFrame(
        {
            "date": [d for d in days for _ in range(2)],
            "symbol": ["A", "B"] * 10,
            "weight": [0.0, 0.0] * 4 + [0.1, -0.1] * 6,  # flat for 4 sessions (a warm-up)
        }
    )
    assert backtest_window(w, days, days[9], 252) == days[4:10]
    assert backtest_window(w, days, days[9], 3) == days[7:10]
    assert backtest_window(w, days, days[6], 252) == days[4:7]  # never a session after d
    assert backtest_window(w, days, days[2], 252) == [days[2]]  # nothing held yet
