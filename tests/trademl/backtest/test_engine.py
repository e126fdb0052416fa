"""Engine vs a plain per-session loop, flat books, lag honesty, chunking, frame helpers."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from trademl.backtest import BacktestParams, backtest_frames, build_panel, run_backtest, to_matrix
from trademl.costs import CostModel

COSTS = CostModel(fee_bps=0.5, half_spread_bps=3.0, auction_slippage_bps=1.0, impact_coef=0.7)


def _market(seed: int, t: int, n: int, holes: bool = True):
    """Random walk opens/closes with gaps, missing bars, late listings; ADV and σ with NaNs."""
    rng = np.random.default_rng(seed)
    lr = rng.normal(0.0, 0.015, size=(2 * t, n))  # alternating overnight / intraday moves
    path = 50.0 * np.exp(np.cumsum(lr, axis=0))
    o, c = path[0::2].copy(), path[1::2].copy()
    adv = rng.lognormal(12, 1, size=(t, n))
    sig = rng.uniform(0.005, 0.04, size=(t, n))
    if holes:
        o[rng.random((t, n)) < 0.05] = np.nan
        c[rng.random((t, n)) < 0.05] = np.nan
        o[: t // 4, 0] = c[: t // 4, 0] = np.nan  # listed late
        adv[rng.random((t, n)) < 0.05] = np.nan
        sig[rng.random((t, n)) < 0.05] = np.nan
    w = rng.normal(0.0, 0.1, size=(t, n))
    w[rng.random((t, n)) < 0.2] = np.nan  # hold
    return w, o, c, adv, sig


def reference_loop(w, o, c, adv, sig, p: BacktestParams, cm: CostModel) -> dict[str, np.ndarray]:
    """The same conventions, in dollars, one session and one name at a time."""
    t_len, n = w.shape
    k = p.capital
    shares = [0.0] * n  # actual shares held
    mark = [math.nan] * n  # last known price
    out = {key: np.zeros(t_len) for key in ("gross", "turnover", "impact", "linear", "borrow")}
    net_prev = 0.0
    cash = np.zeros(t_len)
    linear = (cm.fee_bps + cm.half_spread_bps + cm.auction_slippage_bps) * 1e-4
    for t in range(t_len):
        d = t - p.lag
        pnl = 0.0
        close_val = [0.0] * n
        for j in range(n):
            ok_o = math.isfinite(o[t, j]) and o[t, j] > 0
            ok_c = math.isfinite(c[t, j]) and c[t, j] > 0
            o_mark = o[t, j] if ok_o else mark[j]
            c_mark = c[t, j] if ok_c else o_mark
            exec_ok, exec_px = (ok_o, o_mark) if p.price == "open" else (ok_c, c_mark)
            before = shares[j]
            if p.price == "open" and before != 0.0:
                pnl += before * (o_mark - mark[j])  # overnight
            elif p.price == "close" and before != 0.0:
                pnl += before * (c_mark - mark[j])
            target = w[d, j] if d >= 0 else math.nan
            if p.nan_target == "flat" and d >= 0 and math.isnan(target):
                target = 0.0
            after = target * k / exec_px if exec_ok and math.isfinite(target) else before
            traded = abs(after - before)
            if traded > 0:
                dollars = traded * exec_px
                out["turnover"][t] += dollars / k
                out["linear"][t] += linear * dollars / k
                a, s = adv[d, j], sig[d, j]
                if math.isfinite(a) and a > 0 and math.isfinite(s):
                    rate = cm.impact_coef * s * math.sqrt(traded / a)
                else:
                    rate = cm.unknown_impact_bps * 1e-4
                out["impact"][t] += rate * dollars / k
            if p.price == "open" and after != 0.0:
                pnl += after * (c_mark - o_mark)  # intraday
            shares[j] = after
            mark[j] = c_mark
            close_val[j] = after * c_mark / k if after != 0.0 else 0.0
        # Borrow tiers: dollar-ADV terciles of the names with a usable ADV this session.
        dollar_adv = [adv[t, j] * mark[j] if math.isfinite(mark[j]) else math.nan for j in range(n)]
        usable = [j for j in range(n) if math.isfinite(dollar_adv[j]) and dollar_adv[j] > 0]
        ranked = sorted(usable, key=lambda j: dollar_adv[j])
        tier = [cm.n_tiers - 1] * n
        for r, j in enumerate(ranked):
            tier[j] = cm.n_tiers - 1 - (r * cm.n_tiers) // len(ranked)
        for j in range(n):
            if close_val[j] < 0:
                out["borrow"][t] += -close_val[j] * cm.borrow_bps_tiers[tier[j]] * 1e-4 / 252
        out["gross"][t] = pnl / k
        cash[t] = (1.0 - net_prev) * p.cash_rate / p.periods_per_year
        net_prev = sum(close_val)
    out["net"] = out["gross"] + cash - out["linear"] - out["impact"] - out["borrow"]
    return out


@pytest.mark.parametrize(
    "params",
    [
        BacktestParams(lag=1, price="open", capital=5e6, cash_rate=0.03, chunk_sessions=7),
        BacktestParams(lag=2, price="close", capital=1e8, nan_target="flat", chunk_sessions=64),
        BacktestParams(lag=0, price="close", capital=1e7, chunk_sessions=1),
    ],
)
def test_matches_plain_reference_loop(params: BacktestParams) -> None:
    w, o, c, adv, sig = _market(1, 40, 9)
    res = run_backtest(w, o, c, adv, sig, params=params, costs=COSTS)
    ref = reference_loop(w, o, c, adv, sig, params, COSTS)
    np.testing.assert_allclose(res.gross_returns, ref["gross"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.turnover, ref["turnover"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.impact, ref["impact"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(
        res.fee + res.spread + res.auction, ref["linear"], rtol=1e-10, atol=1e-15
    )
    np.testing.assert_allclose(res.borrow, ref["borrow"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.net_returns, ref["net"], rtol=1e-10, atol=1e-15)
    assert res.turnover.sum() > 1.0 and res.borrow.sum() > 0  # the run did trade and short


def test_zero_and_empty_weights_give_flat_equity() -> None:
    w, o, c, adv, sig = _market(2, 30, 6)
    for weights in (np.zeros_like(w), np.full_like(w, np.nan)):
        res = run_backtest(weights, o, c, adv, sig, costs=COSTS)
        np.testing.assert_array_equal(res.equity, np.ones(30))
        assert res.turnover.sum() == 0 and res.costs.sum() == 0
        assert res.gross_exposure.sum() == 0
    # No symbols at all: cash only (2.52 % / 252 = 1 bp per session).
    e = np.empty((4, 0))
    cash_only = run_backtest(e, e, e, e, e, params=BacktestParams(cash_rate=0.0252))
    np.testing.assert_allclose(cash_only.equity, 1.0001 ** np.arange(1, 5), rtol=1e-12)


def test_lag_one_honesty_same_day_sign_earns_nothing() -> None:
    # Weight = sign of the decision session's own close-to-close return: a perfect
    # hindsight signal. Traded at the next open it meets fresh, independent returns.
    rng = np.random.default_rng(3)
    t, n = 1500, 20
    lr = rng.normal(0.0, 0.01, size=(2 * t, n))
    path = 100.0 * np.exp(np.cumsum(lr, axis=0))
    o, c = path[0::2], path[1::2]
    same_day = np.vstack([np.zeros((1, n)), c[1:] / c[:-1] - 1.0])
    w = np.sign(same_day) / n
    flat = np.ones((t, n))
    res = run_backtest(w, o, c, flat * 1e12, flat * 0.0, costs=CostModel(half_spread_bps=0.0))
    g = res.gross_returns[2:]
    t_stat = g.mean() / g.std(ddof=1) * math.sqrt(g.size)
    assert abs(t_stat) < 4.0
    # The look-ahead version of the same weights earns the mean absolute return every day.
    cheat = np.sum(w * same_day, axis=1)[1:]
    assert cheat.mean() / cheat.std(ddof=1) * math.sqrt(cheat.size) > 50
    assert cheat.mean() > 20 * abs(g.mean())


def test_lag_shifts_weights_by_rows_and_chunks_do_not_matter() -> None:
    w, o, c, adv, sig = _market(4, 50, 7)
    lag2 = run_backtest(w, o, c, adv, sig, params=BacktestParams(lag=2), costs=COSTS)
    shifted = np.vstack([np.full((1, 7), np.nan), w[:-1]])
    adv1, sig1 = np.vstack([adv[:1], adv[:-1]]), np.vstack([sig[:1], sig[:-1]])
    lag1 = run_backtest(shifted, o, c, adv1, sig1, params=BacktestParams(lag=1), costs=COSTS)
    np.testing.assert_allclose(lag2.gross_returns, lag1.gross_returns, atol=1e-15)
    np.testing.assert_allclose(lag2.turnover, lag1.turnover, atol=1e-15)
    a = run_backtest(w, o, c, adv, sig, params=BacktestParams(chunk_sessions=3), costs=COSTS)
    b = run_backtest(w, o, c, adv, sig, params=BacktestParams(chunk_sessions=500), costs=COSTS)
    np.testing.assert_array_equal(a.net_returns, b.net_returns)


def test_explicit_borrow_tiers() -> None:
    w, o, c, adv, sig = _market(7, 30, 5, holes=False)
    tiered = CostModel(borrow_bps_tiers=(100.0, 300.0, 900.0))
    # Every name in tier 1 must cost what a single 300 bp tier costs.
    a = run_backtest(w, o, c, adv, sig, costs=tiered, borrow_tiers=np.ones(5, dtype=int))
    b = run_backtest(w, o, c, adv, sig, costs=CostModel(borrow_bps_tiers=(300.0,)))
    np.testing.assert_allclose(a.borrow, b.borrow, rtol=1e-12)
    assert b.borrow.sum() > 0
    # Short notional · 300 bp / 252 per session.
    np.testing.assert_allclose(b.borrow, b.short_exposure * 0.03 / 252, rtol=1e-12)
    with pytest.raises(ValueError, match=r"borrow tiers must lie in \[0, 2\]"):
        run_backtest(w, o, c, adv, sig, costs=tiered, borrow_tiers=np.full(5, 3))


def test_input_validation() -> None:
    w, o, c, adv, sig = _market(5, 5, 3, holes=False)
    with pytest.raises(ValueError, match=r"close must have shape \(5, 3\)"):
        run_backtest(w, o, c[:, :2], adv, sig)
    bad = w.copy()
    bad[2, 1] = np.inf
    syms = pl.Series(["A", "B", "C"])
    with pytest.raises(ValueError, match="infinite at session 2 symbol 'B'"):
        run_backtest(bad, o, c, adv, sig, symbols=syms)
    with pytest.raises(ValueError, match="cannot trade at d's open"):
        BacktestParams(lag=0, price="open")
    with pytest.raises(ValueError, match="open_ prices are required"):
        run_backtest(w, None, c, adv, sig)


def test_frames_helpers_round_trip_and_errors() -> None:
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(4)]
    w, o, c, adv, sig = _market(6, 4, 3, holes=False)
    syms = ["AAA", "BBB", "CCC"]

    def long(mat: np.ndarray, name: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "date": [d for d in days for _ in syms],
                "symbol": syms * 4,
                name: mat.ravel(),
            }
        )

    wf = long(w, "weight").filter(pl.col("weight").is_not_nan()).reverse()  # unsorted, sparse
    bars = long(o, "open").join(long(c, "close"), on=["date", "symbol"])
    risk = long(adv, "adv").join(long(sig, "sigma"), on=["date", "symbol"])
    panel = build_panel(wf, bars, risk)
    assert panel.symbols.to_list() == syms and panel.sessions.to_list() == days
    np.testing.assert_array_equal(panel.close, c)
    np.testing.assert_array_equal(np.isnan(panel.weights), np.isnan(w))
    res = backtest_frames(wf, bars, risk, costs=COSTS)
    direct = run_backtest(w, o, c, adv, sig, costs=COSTS)
    np.testing.assert_array_equal(res.net_returns, direct.net_returns)
    frame = res.to_frame()
    assert frame["date"].to_list() == days and "costs" in frame.columns
    with pytest.raises(ValueError, match="symbol 'ZZZ' not in the symbols"):
        to_matrix(wf.with_columns(pl.lit("ZZZ").alias("symbol")), "weight", days, syms)
    with pytest.raises(ValueError, match=r"repeats .* at session 2024-01-02"):
        to_matrix(pl.concat([bars, bars[:1]]), "close", days, syms)
    with pytest.raises(ValueError, match=r"date .* not in the sessions"):
        to_matrix(bars, "close", days[1:], syms)
