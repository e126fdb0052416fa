"""Backtest engine benchmark: 3000 symbols × 20 years of random daily weights, costs, borrow.

Usage::

    python -m benchmarks.backtest_bench            # 3000 × 252·20 sessions
    python -m benchmarks.backtest_bench --quick    # 500 × 252·3 sessions

Prints JSON lines on stdout (progress on stderr):

- ``backtest_{N}x{Y}y``: wall seconds of `run_backtest` (target 10 s), with ``peak_rss_mb``
  (VmHWM after the inputs were generated, so inputs + engine; the inputs alone are
  ``inputs_mb``).
- ``backtest_speedup_vs_loop``: the wall of a plain per-session Python loop (numpy over the
  symbols of one session, the natural non-vectorized engine) over the same inputs, divided by
  the engine's wall. The loop runs on the first ``--loop-sessions`` sessions and its time is
  extrapolated linearly to all sessions when that is fewer (``loop_extrapolated``); the
  engine's and the loop's per-session results on those sessions are compared
  (``max_abs_diff`` over net returns, turnover and costs). ``speedup_cpu`` is the same ratio
  in CPU seconds, steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time

import numpy as np

from trademl.backtest import BacktestParams, run_backtest
from trademl.costs import CostModel, liquidity_tiers

TARGET_S = 10.0
PARITY_TOL = 1e-10


def _log(msg: str) -> None:
    print(f"[backtest_bench] {msg}", file=sys.stderr, flush=True)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _peak_rss_mb() -> float:
    """VmHWM (peak RSS since the last reset) in MiB; ru_maxrss when /proc is unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def make_inputs(n_sym: int, n_sess: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random-walk prices, ADV (shares), σ and weights (10 % NaN = hold), built in place."""
    rng = np.random.default_rng(seed)
    shape = (n_sess, n_sym)
    close = rng.standard_normal(shape)
    close *= 0.015
    np.cumsum(close, axis=0, out=close)
    np.exp(close, out=close)
    close *= 50.0
    open_ = rng.standard_normal(shape)
    open_ *= 0.005
    np.exp(open_, out=open_)
    open_[1:] *= close[:-1]
    open_[0] *= 50.0
    adv = rng.standard_normal(shape)
    adv += 13.0
    np.exp(adv, out=adv)
    sigma = rng.random(shape)
    sigma *= 0.02
    sigma += 0.01
    weights = rng.standard_normal(shape)
    weights *= 1.0 / n_sym
    weights[rng.random(shape) < 0.1] = np.nan
    return {"weights": weights, "open_": open_, "close": close, "adv": adv, "sigma": sigma}


def loop_backtest(
    inp: dict[str, np.ndarray], p: BacktestParams, cm: CostModel, n_sessions: int
) -> dict[str, np.ndarray]:
    """The engine's conventions (price='open', lag ≥ 1), one session at a time."""
    w, o_all, c_all = inp["weights"], inp["open_"], inp["close"]
    adv, sig = inp["adv"], inp["sigma"]
    n = w.shape[1]
    shares = np.zeros(n)
    mark = np.full(n, np.nan)
    net_prev = 0.0
    linear = (cm.fee_bps + cm.half_spread_bps + cm.auction_slippage_bps) * 1e-4
    borrow_rate = np.asarray(cm.borrow_bps_tiers) * 1e-4 / cm.days_per_year
    out = {k: np.zeros(n_sessions) for k in ("net", "turnover", "costs")}
    for t in range(n_sessions):
        o = np.where(o_all[t] > 0, o_all[t], np.nan)
        c = np.where(c_all[t] > 0, c_all[t], np.nan)
        o_m = np.where(np.isfinite(o), o, mark)
        c_m = np.where(np.isfinite(c), c, o_m)
        held = shares != 0
        pnl = float(np.sum(shares[held] * (o_m[held] - mark[held])))
        d = t - p.lag
        target = w[d] if d >= 0 else np.full(n, np.nan)
        new = np.where(np.isfinite(target) & np.isfinite(o), target / o, shares)
        traded = np.abs(new - shares)
        notional = traded * np.nan_to_num(o_m)
        part = traded * p.capital / adv[d] if d >= 0 else np.zeros(n)
        rate = cm.impact_coef * np.abs(sig[d]) * np.sqrt(part) if d >= 0 else np.zeros(n)
        known = np.isfinite(rate)
        rate = np.where(known, rate, cm.unknown_impact_bps * 1e-4)
        cost = float(np.sum(notional * (linear + np.where(traded > 0, rate, 0.0))))
        shares = new
        held = shares != 0
        pnl += float(np.sum(shares[held] * (c_m[held] - o_m[held])))
        val = shares * np.nan_to_num(c_m)
        tiers = liquidity_tiers(adv[t] * np.nan_to_num(c_m), cm.n_tiers)
        cost += float(np.sum(np.maximum(-val, 0.0) * borrow_rate[tiers]))
        cash = (1.0 - net_prev) * p.cash_rate / p.periods_per_year
        net_prev = float(val.sum())
        mark = c_m
        out["net"][t] = pnl + cash - cost
        out["turnover"][t] = notional.sum()
        out["costs"][t] = cost
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.backtest_bench")
    ap.add_argument("--quick", action="store_true", help="500 symbols × 3 years")
    ap.add_argument("--symbols", type=int, default=None)
    ap.add_argument("--years", type=int, default=None)
    ap.add_argument(
        "--loop-sessions", type=int, default=None, help="sessions the loop runs (default all)"
    )
    ap.add_argument("--target", type=float, default=TARGET_S)
    a = ap.parse_args(argv)
    n_sym = a.symbols or (500 if a.quick else 3000)
    years = a.years or (3 if a.quick else 20)
    n_sess = 252 * years
    loop_n = min(a.loop_sessions or n_sess, n_sess)
    tag = f"{n_sym}x{years}y"
    mode = {"mode": "quick"} if a.quick else {}

    _log(f"generating {n_sym} symbols × {n_sess} sessions …")
    t0 = time.perf_counter()
    inp = make_inputs(n_sym, n_sess)
    gen_s = time.perf_counter() - t0
    inputs_mb = sum(v.nbytes for v in inp.values()) / 2**20
    scope = "inputs+engine" if _reset_peak() else "process"
    params = BacktestParams(lag=1, price="open", capital=1e8, cash_rate=0.02)
    costs = CostModel(fee_bps=0.5, half_spread_bps=5.0, auction_slippage_bps=1.0)

    _log("vectorized engine …")
    c0, t0 = time.process_time(), time.perf_counter()
    res = run_backtest(**inp, params=params, costs=costs)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = _peak_rss_mb()
    print(
        json.dumps(
            {
                "name": f"backtest_{tag}",
                "value": round(wall, 3),
                "unit": "s",
                "target": a.target,
                "ok": wall <= a.target,
                "pass": wall <= a.target,
                "peak_rss_mb": peak,
                "peak_rss_scope": scope,
                "inputs_mb": round(inputs_mb, 1),
                "cpu_s": round(cpu, 3),
                "gen_s": round(gen_s, 2),
                "symbols": n_sym,
                "sessions": n_sess,
                "final_equity": float(res.equity[-1]),
                "mean_turnover": float(res.turnover.mean()),
                **mode,
            }
        ),
        flush=True,
    )

    _log(f"per-session loop over {loop_n} sessions …")
    c0, t0 = time.process_time(), time.perf_counter()
    ref = loop_backtest(inp, params, costs, loop_n)
    loop_s = time.perf_counter() - t0
    loop_cpu = time.process_time() - c0
    loop_full = loop_s * n_sess / loop_n
    loop_cpu_full = loop_cpu * n_sess / loop_n
    diffs = {
        "net": float(np.max(np.abs(ref["net"] - res.net_returns[:loop_n]))),
        "turnover": float(np.max(np.abs(ref["turnover"] - res.turnover[:loop_n]))),
        "costs": float(np.max(np.abs(ref["costs"] - res.costs[:loop_n]))),
    }
    max_diff = max(diffs.values())
    _log(f"max abs diff engine vs loop over {loop_n} sessions: {max_diff:.3e} {diffs}")
    speedup = loop_full / wall if wall > 0 else math.nan
    print(
        json.dumps(
            {
                "name": "backtest_speedup_vs_loop",
                "value": round(speedup, 2),
                "unit": "x",
                "target": None,
                "ok": max_diff <= PARITY_TOL,
                "pass": max_diff <= PARITY_TOL,
                "size": tag,
                "engine_s": round(wall, 3),
                "loop_s": round(loop_full, 3),
                "loop_measured_s": round(loop_s, 3),
                "speedup_cpu": round(loop_cpu_full / cpu, 2) if cpu > 0 else None,
                "engine_cpu_s": round(cpu, 3),
                "loop_cpu_s": round(loop_cpu_full, 3),
                "loop_sessions": loop_n,
                "loop_extrapolated": loop_n < n_sess,
                "max_abs_diff": max_diff,
                "max_abs_diff_by_series": diffs,
                "parity_tol": PARITY_TOL,
                **mode,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
