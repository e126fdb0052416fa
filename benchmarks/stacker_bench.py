"""Stacker and serving benchmarks (JSON lines on stdout, progress on stderr)::

    python -m benchmarks.stacker_bench train [--symbols 500 --years 10 | --quick]
    python -m benchmarks.stacker_bench serve [--symbols 3000 | --quick]

`train`: `train_stacker` on four sleeves' OOF (three CPCV sleeves with 7 paths each and a
walk-forward one) for symbols × years sessions, nested over the 8 session groups; beside it,
its gate metrics computed with the polars per-session references (`ic_by_session`,
`long_short_returns`) the numpy `SessionMatrix` replaced, in the same run.
`serve`: one session of `alpha_scores` (the router, stacker path) + `target_weights` +
`sized_weights` (an ONNX GRPO policy) for N symbols, library time only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import polars as pl

TARGET_TRAIN_S = 10.0
TARGET_SERVE_S = 1.0


def _log(msg: str) -> None:
    print(f"[stacker_bench] {msg}", file=sys.stderr, flush=True)


def _oofs(symbols: int, sessions: int, seed: int = 0) -> tuple[dict[str, Any], list[dt.date]]:
    """Four sleeves' OOF on one CPCV(8, 2) layout: label = Σ signals + noise."""
    from trademl.data.calendar import get_calendar
    from trademl.models.stacker.train import SleeveOOF
    from trademl.validation.cpcv import CombinatorialPurgedCV, session_ordinals
    from trademl.validation.layout import cpcv_layout, walk_forward_layout

    cal = get_calendar("XNYS", dt.date(1995, 1, 3))
    end = cal.index(cal.latest_completed_session())
    days, ends = (
        cal.sessions[end - sessions - 10 : end - 10],
        cal.sessions[end - sessions - 4 : end - 4],
    )
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), symbols),
            "symbol": np.tile([f"S{i:05d}" for i in range(symbols)], sessions),
            "t1": np.repeat(np.array(ends, dtype="datetime64[D]"), symbols),
        }
    ).with_columns(pl.col("date").cast(pl.Date), pl.col("t1").cast(pl.Date))
    n = frame.height
    signals = [rng.normal(size=n) for _ in range(4)]
    frame = frame.with_columns(pl.Series("y", 0.02 * (0.05 * sum(signals) + rng.normal(size=n))))
    cv = CombinatorialPurgedCV(n_groups=8, n_test_groups=2, embargo=10)
    session = session_ordinals(frame.get_column("date"), cal.sessions)
    t1 = session_ordinals(frame.get_column("t1"), cal.sessions)
    layout = cpcv_layout(cv, frame.get_column("date").to_numpy(), session, t1)
    oofs = {}
    for k in range(3):
        paths = [
            pl.Series(f"oof_path_{p}", signals[k] + rng.normal(size=n)) for p in range(cv.n_paths)
        ]
        oofs[f"cpcv_{k}"] = SleeveOOF(
            f"cpcv_{k}", frame.with_columns(paths), layout, "1", 10, {"pbo": 0.01, "dsr": 0.99}
        )
    wf = frame.select("date", "symbol", "y").with_columns(
        pl.Series("oof_path_0", signals[3] + rng.normal(size=n))
    )
    cutoff = days[0] - dt.timedelta(days=30)
    oofs["walk_forward"] = SleeveOOF(
        "walk_forward", wf, walk_forward_layout(days, [cutoff]), "1", 1, {}
    )
    return oofs, cal.sessions


def _polars_metrics(y: np.ndarray, session: np.ndarray, oof: np.ndarray, horizon: int) -> None:
    """The gate metrics per path with the polars references (what SessionMatrix replaced)."""
    from trademl.validation.metrics import ic_by_session, ic_summary, long_short_returns

    keep = np.isin(session, np.unique(session)[::horizon])
    for p in range(oof.shape[0]):
        ic_summary(ic_by_session(oof[p], y, session))
        long_short_returns(oof[p][keep], y[keep], session[keep], spread_bps=5.0)


def train(symbols: int, years: int) -> list[dict]:
    from trademl.models.stacker.train import train_stacker
    from trademl.validation.cpcv import session_ordinals
    from trademl.validation.paths import path_metrics

    sessions = 252 * years
    _log(f"OOF of 4 sleeves for {symbols} symbols × {sessions} sessions …")
    oofs, cal = _oofs(symbols, sessions)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    fit = train_stacker(oofs, sessions=cal)
    wall = time.perf_counter() - t0
    _log(f"train_stacker: {wall:.2f} s, {fit.metrics['n_rows']:,} rows; {fit.model.weight_map}")
    frame = fit.oof
    y = frame.get_column("y").to_numpy()
    session = session_ordinals(frame.get_column("date"), cal)
    oof = np.vstack(
        [frame.get_column(f"oof_path_{p}").to_numpy() for p in range(fit.layout.n_paths)]
    )
    t0 = time.perf_counter()
    path_metrics(y, session, oof, horizon=5, spread_bps=5.0)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    _polars_metrics(y, session, oof, 5)
    ref = time.perf_counter() - t0
    rows = fit.metrics["n_rows"]
    return [
        {
            "name": f"stacker_train_{symbols}x{years}y",
            "value": round(wall, 3),
            "unit": "s",
            "target": TARGET_TRAIN_S,
            "pass": wall <= TARGET_TRAIN_S,
            "rows": rows,
            "sleeves": 4,
            "paths": fit.layout.n_paths,
            "groups": len(fit.layout.groups),
            "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        },
        {
            "name": "stacker_path_metrics_speedup_vs_polars",
            "value": round(ref / ours, 2),
            "unit": "x",
            "numpy_s": round(ours, 3),
            "polars_s": round(ref, 3),
            "paths": oof.shape[0],
        },
    ]


def serve(symbols: int, rounds: int = 5) -> list[dict]:
    """One session through the router (stacker path), target weights and sizing."""
    from trademl.config import PolicyConfig, PortfolioConfig, Settings
    from trademl.models.policy import GRPOSizer, to_onnx
    from trademl.models.policy.book import book_states
    from trademl.models.policy.onnx_policy import OnnxPolicy
    from trademl.models.stacker.model import StackerModel
    from trademl.params import grpo_params, portfolio_params
    from trademl.portfolio import target_weights
    from trademl.portfolio.router import StackerCandidate, route_session
    from trademl_assets.policy import size_book

    rng = np.random.default_rng(1)
    s = Settings(portfolio=PortfolioConfig(), policy=PolicyConfig(epochs=1, batch_size=4096))
    day = dt.date(2024, 6, 3)
    syms = [f"S{i:05d}" for i in range(symbols)]
    names = ["equities_lgbm", "equities_catboost", "linear", "forecasts"]
    scores = {n: pl.DataFrame({"symbol": syms, "score": rng.normal(size=symbols)}) for n in names}
    feats = pl.DataFrame(
        {"date": [day] * symbols, "symbol": syms, "mom_20": rng.normal(size=symbols)}
    )
    risk = pl.DataFrame(
        {"date": [day] * symbols, "symbol": syms, "sigma": rng.uniform(0.01, 0.03, symbols)}
    )
    stacker = StackerCandidate(
        "1", day, StackerModel(tuple(names), "nnls", weights=np.full(4, 0.25)), 40
    )
    # a fitted GRPO policy exported to ONNX, as the sized_weights asset loads it (not timed)
    train = pl.DataFrame(
        {
            "session": np.repeat(np.arange(60), 50),
            "symbol": np.tile(syms[:50], 60),
            "y_hat": rng.normal(size=3000),
            "vol": rng.uniform(0.01, 0.03, 3000),
            "trend": rng.normal(size=3000),
            "y": 0.01 * rng.normal(size=3000),
        }
    )
    policy = OnnxPolicy(to_onnx(GRPOSizer(params=grpo_params(s)).fit(train)))
    times: dict[str, list[float]] = {"alpha_scores": [], "target_weights": [], "sized_weights": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        routed = route_session(
            day,
            scores,
            dict.fromkeys(names, "1"),
            dict.fromkeys(names, 10),
            [stacker],
            stacker_enabled=True,
            fallback_weights={},
            fit_free=None,
            fit_free_name=None,
        )
        t1 = time.perf_counter()
        w = target_weights(
            routed.frame.select("date", "symbol", "score"), risk, portfolio_params(s)
        )
        book = (
            w.join(routed.frame.select("symbol", "score"), on="symbol")
            .join(risk, on=["date", "symbol"])
            .with_columns(pl.lit(1e6).alias("adv"))
        )
        t2 = time.perf_counter()
        sized = size_book(book, feats, policy, s)
        t3 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            times[k].append(v)
    assert book_states(book, feats, trend_feature="mom_20").height == (book["weight"] != 0).sum()
    med = {k: statistics.median(v) for k, v in times.items()}
    total = sum(med.values())
    return [
        {
            "name": f"alpha_to_sized_{symbols}",
            "value": round(total, 4),
            "unit": "s",
            "target": TARGET_SERVE_S,
            "pass": total <= TARGET_SERVE_S,
            **{f"{k}_s": round(v, 4) for k, v in med.items()},
            "rounds": rounds,
            "held_names": int((sized["weight"] != 0).sum()),
        }
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stacker_bench", description=__doc__)
    p.add_argument("case", choices=["train", "serve"])
    p.add_argument("--symbols", type=int)
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    if a.case == "train":
        lines = train(a.symbols or (100 if a.quick else 500), 2 if a.quick else a.years)
    else:
        lines = serve(a.symbols or (500 if a.quick else 3000))
    for line in lines:
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
