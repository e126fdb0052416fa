"""One feature-build benchmark case per process; prints its result as JSON lines on stdout.

Usage: ``python -m benchmarks.features_bench {build,pandas,incremental} --symbols N ...``.
`benchmarks.run` starts one process per case so that peak RSS is per case. The synthetic
bars are generated first and are not timed (their time is the ``gen_s`` key); the peak RSS
counter is then reset (Linux ``/proc/self/clear_refs``), so ``peak_rss_mb`` covers the
measured phase: the resident bars plus everything the build allocates.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import gc
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from trademl.config import FeatureConfig
from trademl.data.calendar import get_calendar
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
from trademl.features import build_features, feature_names, required_history

#: Fixed last session of every synthetic history, so runs are comparable across days.
END = dt.date(2024, 12, 31)
#: A pandas/polars column pair matches when |a − b| / max(1, |b|) stays within this.
PARITY_TOL = 1e-6


def log(msg: str) -> None:
    """Progress text goes to stderr; stdout carries JSON lines only."""
    print(f"[features_bench] {msg}", file=sys.stderr, flush=True)


def emit(name: str, value: float | None, unit: str, **extra: Any) -> None:
    """Print one result line: {"name", "value", "unit", ...extra}."""
    print(json.dumps({"name": name, "value": value, "unit": unit, **extra}), flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process since start (or the last reset), MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float | None:
    """Resident set size now, MiB (Linux only)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return None
    return round(pages * resource.getpagesize() / 2**20, 1)


def reset_peak_rss() -> bool:
    """Release freed heap pages and reset the peak-RSS counter; False where unsupported."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def synthetic_bars(n_symbols: int, years: int) -> tuple[pl.DataFrame, list[dt.date], float]:
    """Bars of `n_symbols` names over `years` calendar years ending at END, and the sessions."""
    start = dt.date(END.year - years + 1, 1, 1)
    cal = get_calendar("XNYS", start)
    log(f"generating {n_symbols} symbols × {years}y of synthetic bars …")
    t0 = time.perf_counter()
    bars = SyntheticMarket(SyntheticSpec(n_symbols=n_symbols, start=start), cal).load(end=END)
    gen_s = time.perf_counter() - t0
    sessions = cal.sessions_in_range(start, END)
    log(f"  {bars.height:,} bars over {len(sessions)} sessions in {gen_s:.1f} s")
    return bars, sessions, gen_s


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timing:
    """Wall and CPU (user + sys, all threads) seconds of each run, and the 1-min load around."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.load_before = os.getloadavg()[0]
        self.load_after = self.load_before

    def extra(self, digits: int = 3) -> dict[str, Any]:
        """Keys every timed result line carries."""
        return {
            "min_s": round(min(self.wall), digits),
            "runs_s": [round(t, digits) for t in self.wall],
            "cpu_s": [round(t, digits) for t in self.cpu],
            "loadavg_1m": [round(self.load_before, 2), round(self.load_after, 2)],
        }


def timed(fn: Callable[[], Any], repeats: int, label: str) -> tuple[Timing, Any]:
    """Run `fn` `repeats` times; its timings and the last result."""
    timing = Timing()
    out: Any = None
    for i in range(repeats):
        out = None  # drop the previous result before the next run allocates its own
        gc.collect()
        c0, t0 = _cpu_s(), time.perf_counter()
        out = fn()
        timing.wall.append(time.perf_counter() - t0)
        timing.cpu.append(_cpu_s() - c0)
        log(f"  {label} run {i + 1}/{repeats}: {timing.wall[-1]:.2f} s")
    timing.load_after = os.getloadavg()[0]
    return timing, out


def _size(n_symbols: int, years: int) -> str:
    return f"{n_symbols}x{years}y"


def _polars_build(bars: pl.DataFrame, sessions: list[dt.date], **kw: Any) -> pl.DataFrame:
    cfg = FeatureConfig()
    return build_features(
        bars, sessions, cross_sectional=cfg.cross_sectional, ffill_limit=cfg.ffill_limit, **kw
    )


def compare(got: pl.DataFrame, ref: pl.DataFrame, names: list[str]) -> dict[str, Any]:
    """Column-by-column agreement of two feature frames keyed and sorted by (date, symbol).

    The per-value difference is |a − b| / max(1, |b|): absolute for small features,
    relative for large ones (dollar volume). A null on one side only is a null mismatch.
    """
    keys = ["date", "symbol"]
    keys_match = got.select(keys).equals(ref.select(keys))
    if not keys_match:
        joined = got.join(ref, on=keys, how="inner", suffix="__ref")
        got = joined.select(keys + names)
        ref = joined.select(keys + [pl.col(f"{n}__ref").alias(n) for n in names])
    per_col: dict[str, float] = {}
    abs_col: dict[str, float] = {}
    nulls: dict[str, int] = {}
    worst_rows: dict[str, dict[str, Any]] = {}
    for name in names:
        a = got[name].cast(pl.Float64).to_numpy()
        b = ref[name].cast(pl.Float64).to_numpy()
        na, nb = np.isnan(a), np.isnan(b)
        if (mism := int((na != nb).sum())) > 0:
            nulls[name] = mism
        both = ~na & ~nb
        with np.errstate(invalid="ignore"):
            diff = np.where(both & (a != b), np.abs(a - b), 0.0)
        diff = np.nan_to_num(diff, nan=np.inf)
        scaled = diff / np.maximum(1.0, np.abs(np.where(both, b, 0.0)))
        i = int(np.argmax(scaled)) if scaled.size else 0
        per_col[name] = float(scaled[i]) if scaled.size else 0.0
        abs_col[name] = float(diff.max()) if diff.size else 0.0
        if scaled.size and scaled[i] > PARITY_TOL:
            row = got.row(i, named=True)
            worst_rows[name] = {
                "date": str(row["date"]),
                "symbol": row["symbol"],
                "got": float(a[i]),
                "ref": float(b[i]),
            }
    worst = max(per_col, key=lambda n: per_col[n]) if per_col else None
    top = sorted(per_col, key=lambda n: -per_col[n])[:5]
    return {
        "max_scaled_diff": per_col[worst] if worst else 0.0,
        "worst_column": worst,
        "max_abs_diff": abs_col[worst] if worst else 0.0,
        "keys_match": keys_match,
        "rows": [got.height, ref.height],
        "null_mismatches": nulls,
        "top_columns": {n: per_col[n] for n in top},
        "mismatch_examples": worst_rows,
        "ok": keys_match and not nulls and all(v <= PARITY_TOL for v in per_col.values()),
    }


def punch_holes(bars: pl.DataFrame, sessions: list[dt.date], n_symbols: int) -> pl.DataFrame:
    """The first `n_symbols` names with the gaps the synthetic market rarely has.

    30% of names lose a run of 1–15 sessions (longer than the ffill limit), 10% list late,
    10% delist early, and one session has no bars at all; seeded, so runs are comparable.
    """
    rng = np.random.default_rng(0)
    syms = bars["symbol"].unique().sort().to_list()[:n_symbols]
    t_len = len(sessions)
    drop: list[tuple[str, dt.date]] = [(s, sessions[t_len // 2]) for s in syms]
    for sym in syms:
        u = rng.random()
        if u < 0.3:
            a, n = int(rng.integers(0, t_len)), int(rng.integers(1, 16))
            drop += [(sym, d) for d in sessions[a : a + n]]
        elif u < 0.4:
            drop += [(sym, d) for d in sessions[: int(rng.integers(1, t_len // 3))]]
        elif u < 0.5:
            drop += [(sym, d) for d in sessions[-int(rng.integers(1, t_len // 3)) :]]
    holes = pl.DataFrame(drop, schema={"symbol": pl.String, "date": pl.Date}, orient="row")
    return bars.filter(pl.col("symbol").is_in(syms)).join(holes, on=["symbol", "date"], how="anti")


def case_build(args: argparse.Namespace) -> None:
    """Full-history polars feature build: wall seconds (median of repeats) and peak RSS."""
    bars, sessions, gen_s = synthetic_bars(args.symbols, args.years)
    gen_peak = peak_rss_mb()
    reset = reset_peak_rss()
    rss_before = current_rss_mb()
    timing, out = timed(lambda: _polars_build(bars, sessions), args.repeats, "polars build")
    peak = peak_rss_mb()
    wall = statistics.median(timing.wall)
    ok = wall <= args.target
    if args.rss_target_mb is not None:
        ok = ok and peak <= args.rss_target_mb
    emit(
        f"features_build_{_size(args.symbols, args.years)}",
        round(wall, 3),
        "s",
        target=args.target,
        rss_target_mb=args.rss_target_mb,
        **{"pass": ok},
        rows=out.height,
        grid_rows=args.symbols * len(sessions),
        n_features=len(feature_names(FeatureConfig().cross_sectional)),
        symbols=args.symbols,
        sessions=len(sessions),
        peak_rss_mb=peak,
        peak_rss_scope="build" if reset else "process",
        rss_before_build_mb=rss_before,
        gen_s=round(gen_s, 2),
        gen_peak_rss_mb=gen_peak,
        polars_threads=pl.thread_pool_size(),
        **timing.extra(),
    )


def case_pandas(args: argparse.Namespace) -> None:
    """The pandas reference on the same bars; with --parity, also diff it against polars."""
    from benchmarks.pandas_reference import build_features_pandas

    bars, sessions, gen_s = synthetic_bars(args.symbols, args.years)
    bars_pd = bars.to_pandas()
    cfg = FeatureConfig()
    gen_peak = peak_rss_mb()
    reset = reset_peak_rss()
    timing, ref = timed(
        lambda: build_features_pandas(
            bars_pd, sessions, cross_sectional=cfg.cross_sectional, ffill_limit=cfg.ffill_limit
        ),
        args.repeats,
        "pandas reference",
    )
    peak = peak_rss_mb()
    size = _size(args.symbols, args.years)
    emit(
        f"features_pandas_{size}",
        round(statistics.median(timing.wall), 3),
        "s",
        rows=len(ref),
        symbols=args.symbols,
        sessions=len(sessions),
        peak_rss_mb=peak,
        peak_rss_scope="pandas build" if reset else "process",
        gen_s=round(gen_s, 2),
        gen_peak_rss_mb=gen_peak,
        **timing.extra(),
    )
    if not args.parity:
        return
    names = feature_names(cfg.cross_sectional)
    ref_pl = pl.from_pandas(ref).with_columns(pl.col("date").cast(pl.Date))
    del ref
    pl_timing, out = timed(lambda: _polars_build(bars, sessions), 1, "polars build (parity)")
    report = compare(out, ref_pl, names)
    emit(
        "features_pandas_parity",
        report.pop("max_scaled_diff"),
        "scaled_diff",
        metric="max over rows of |polars - pandas| / max(1, |pandas|)",
        tol=PARITY_TOL,
        **{"pass": report.pop("ok")},
        size=size,
        **report,
        polars_s_same_process=round(pl_timing.wall[0], 3),
    )
    del out, ref_pl
    # The same check on bars with long gaps, late listings, delistings and an empty session.
    log("parity on bars with gaps, listings and delistings …")
    holed = punch_holes(bars, sessions, min(100, args.symbols))
    out = _polars_build(holed, sessions)
    ref = build_features_pandas(
        holed.to_pandas(),
        sessions,
        cross_sectional=cfg.cross_sectional,
        ffill_limit=cfg.ffill_limit,
    )
    report = compare(out, pl.from_pandas(ref).with_columns(pl.col("date").cast(pl.Date)), names)
    emit(
        "features_pandas_parity_gaps",
        report.pop("max_scaled_diff"),
        "scaled_diff",
        metric="as features_pandas_parity, on 100 names with gaps punched into their bars",
        tol=PARITY_TOL,
        **{"pass": report.pop("ok")},
        bars=holed.height,
        dropped_bars=bars.filter(pl.col("symbol").is_in(holed["symbol"].unique())).height
        - holed.height,
        **report,
    )


def case_incremental(args: argparse.Namespace) -> None:
    """One new session for every symbol, from only its `required_history` window of bars."""
    cfg = FeatureConfig()
    bars, sessions, gen_s = synthetic_bars(args.symbols, args.years)
    window = sessions[-required_history(cfg.ffill_limit) :]
    last = window[-1]
    win_bars = bars.filter(pl.col("date") >= window[0])
    # Point-in-time exactness (not timed): the same session built from the whole history.
    log("building the last session from the full history for the exactness check …")
    full = _polars_build(bars, sessions, out_sessions=[last])
    del bars
    reset = reset_peak_rss()
    timing, out = timed(
        lambda: _polars_build(win_bars, window, out_sessions=[last]),
        args.repeats,
        "incremental",
    )
    peak = peak_rss_mb()
    exact = compare(out, full, feature_names(cfg.cross_sectional))
    wall = statistics.median(timing.wall)
    emit(
        f"features_incremental_{args.symbols}",
        round(wall, 4),
        "s",
        target=args.target,
        **{"pass": wall <= args.target},
        session=str(last),
        window_sessions=len(window),
        window_bars=win_bars.height,
        rows=out.height,
        peak_rss_mb=peak,
        peak_rss_scope="incremental" if reset else "process",
        matches_full_history=exact["ok"],
        full_history_max_diff=exact["max_scaled_diff"],
        full_history_worst_column=exact["worst_column"],
        gen_s=round(gen_s, 2),
        **timing.extra(digits=4),
    )


CASES: dict[str, Callable[[argparse.Namespace], None]] = {
    "build": case_build,
    "pandas": case_pandas,
    "incremental": case_incremental,
}


def main(argv: list[str] | None = None) -> int:
    """Parse the case and its size, run it, print its JSON lines."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.features_bench", description=__doc__)
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--target", type=float, default=math.inf, help="wall-seconds target")
    p.add_argument("--rss-target-mb", type=float, default=None)
    p.add_argument("--parity", action="store_true", help="pandas: also diff against polars")
    args = p.parse_args(argv)
    CASES[args.case](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
