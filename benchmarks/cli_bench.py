"""The real path a user takes, through the Dagster CLI on the local deployment (JSON lines)::

    python -m benchmarks.cli_bench [--symbols 3000 --years 20 | --quick]

In a fresh TRADEML_HOME on the synthetic market: a single-run backfill of `bars` over every
session of the last `years` years, then of `features` (timed: wall and the CLI process's
peak RSS, `os.wait4`), then the daily loop as the schedule runs it, over the last sessions one
after the other: the `daily` job, then the `trade` job (the first day also sets up the home's
MLflow store and calendar cache; the later days are timed: one new session's daily run each,
their median reported).
Beside the features backfill: the library's `build_features` on the same bars from the lake,
in the same run, and the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
TARGET_BACKFILL_S = 60.0
TARGET_BACKFILL_RSS_MB = 8192.0
TARGET_DAILY_S = 10.0
#: Sessions the daily loop runs after the backfill: a first day, then the timed ones.
DAYS = 4


def _log(msg: str) -> None:
    print(f"[cli_bench] {msg}", file=sys.stderr, flush=True)


def _timed(cmd: list[str], env: dict[str, str], what: str) -> tuple[float, float]:
    """Run `cmd`; (wall seconds, peak RSS MB of it and its children). Fails loudly."""
    _log("$ " + " ".join(cmd[1:]))
    t0 = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-4000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return wall, usage.ru_maxrss / 1024


def _home(symbols: int, years: int) -> tuple[dict[str, str], list[str]]:
    from trademl.data.calendar import get_calendar

    cal = get_calendar("XNYS", dt.date(1990, 1, 2))
    latest = cal.latest_completed_session()
    start = cal.next_session(dt.date(latest.year - years, latest.month, latest.day))
    keys = [d.isoformat() for d in cal.sessions_in_range(start, latest)]
    home = Path(tempfile.mkdtemp(prefix="cli-bench-"))
    cfg = home / "bench.yaml"
    cfg.write_text(
        "extends: local\n"
        f"data: {{source: synthetic, start: {start}, symbols: {symbols}, seed: 7}}\n"
    )
    env = {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    # as a user runs it: Python writes the repository's bytecode once, not compiles it per start
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "trademl_jobs.instance"], env=env, check=True, cwd=ROOT)
    return env, keys


def _library_features(env: dict[str, str], keys: list[str]) -> dict[str, Any]:
    """`build_features` on the same bars read from the lake, in a fresh process."""
    code = (
        "import json, resource, time\n"
        "from trademl.config import load_settings\n"
        "from trademl.lake import Lake\n"
        "from trademl.features import build_features\n"
        "import datetime as dt\n"
        "s = load_settings(); lake = Lake(s.lake_root)\n"
        f"keys = {json.dumps(keys)}\n"
        "bars = lake.scan('bars', keys).collect()\n"
        "t = time.perf_counter()\n"
        "out = build_features(bars, [dt.date.fromisoformat(k) for k in keys],\n"
        "    cross_sectional=s.features.cross_sectional, ffill_limit=s.features.ffill_limit)\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'rows': out.height,\n"
        "    'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"library features failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cli_bench", description=__doc__)
    p.add_argument("--symbols", type=int, default=3000)
    p.add_argument("--years", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="100 names × 3 years")
    args = p.parse_args(argv)
    symbols, years = (100, 3) if args.quick else (args.symbols, args.years)
    tag = f"{symbols}x{years}y"
    env, keys = _home(symbols, years)
    history, days = keys[:-DAYS], keys[-DAYS:]
    span = f"{history[0]}...{history[-1]}"
    base = [DAGSTER, "asset", "materialize", "-m", "trademl_jobs.definitions"]
    bars_s, bars_rss = _timed([*base, "--select", "bars", "--partition-range", span], env, "bars")
    print(
        json.dumps(
            {
                "name": f"cli_bars_backfill_{tag}",
                "value": round(bars_s, 2),
                "unit": "s",
                "peak_rss_mb": round(bars_rss),
                "partitions": len(history),
            }
        ),
        flush=True,
    )
    feat_s, feat_rss = _timed(
        [*base, "--select", "features", "--partition-range", span], env, "features"
    )
    lib = _library_features(env, history)
    line = {
        "name": f"cli_features_backfill_{tag}",
        "value": round(feat_s, 2),
        "unit": "s",
        "peak_rss_mb": round(feat_rss),
        "partitions": len(history),
        "library_s": round(lib["s"], 2),
        "library_rss_mb": round(lib["rss"]),
        "cli_over_library": round(feat_s / lib["s"], 2),
        "target": TARGET_BACKFILL_S,
        "rss_target_mb": TARGET_BACKFILL_RSS_MB,
        "pass": feat_s <= TARGET_BACKFILL_S and feat_rss <= TARGET_BACKFILL_RSS_MB,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(line), flush=True)
    job = [DAGSTER, "job", "execute", "-m", "trademl_jobs.definitions"]

    def daily_then_trade(session: str) -> tuple[float, float, float]:
        tags = json.dumps({"dagster/partition": session})
        daily_s, daily_rss = _timed([*job, "-j", "daily", "--tags", tags], env, "daily")
        trade_s, trade_rss = _timed([*job, "-j", "trade", "--tags", tags], env, "trade")
        return daily_s, trade_s, max(daily_rss, trade_rss)

    # The daily loop as the schedule runs it, one session after the other: the first day also
    # sets up what a home keeps between days (the MLflow store of the reports, the day's
    # calendar cache); each later day is one new session's run. This box's speed drifts by
    # ±20 % from minute to minute, so the figure is the median of the later days.
    first = daily_then_trade(days[0])
    runs = [daily_then_trade(day) for day in days[1:]]
    totals = [d + t for d, t, _ in runs]
    mid = sorted(range(len(runs)), key=lambda i: totals[i])[len(runs) // 2]
    print(
        json.dumps(
            {
                "name": f"cli_daily_then_trade_{symbols}",
                "value": round(totals[mid], 2),
                "unit": "s",
                "stat": f"median of {len(runs)} consecutive new sessions",
                "daily_s": round(runs[mid][0], 2),
                "trade_s": round(runs[mid][1], 2),
                "min_s": round(min(totals), 2),
                "max_s": round(max(totals), 2),
                "sessions": days[1:],
                "peak_rss_mb": round(max(r[2] for r in runs)),
                "first_day_s": round(first[0] + first[1], 2),
                "first_day_session": days[0],
                "target": TARGET_DAILY_S,
                "pass": totals[mid] <= TARGET_DAILY_S,
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )
    _log(
        f"home kept for inspection: {env['TRADEML_HOME']}; children rss "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
