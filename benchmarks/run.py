"""Run the benchmarks (features, equities, backtest, policy, forecasts, stacker and serving),
one fresh process per case; JSON lines.

Usage::

    python -m benchmarks.run                   # 500×10y, 3000×20y, pandas ratio, incremental
    python -m benchmarks.run --quick           # 100×2y and 500×3y smoke run
    python -m benchmarks.run --full-reference  # also time pandas at 3000×20y (many minutes)

Each stdout line is one JSON object ``{"name", "value", "unit", ...}``; progress and the
cases' own logs go to stderr. See benchmarks/README.md for what each line means.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Targets from the issue, for the 2-core reference box.
TARGET_SMALL_S = 5.0
TARGET_LARGE_S = 60.0
TARGET_LARGE_RSS_MB = 8192.0
TARGET_SPEEDUP = 10.0
TARGET_INCREMENTAL_S = 2.0


@dataclass(frozen=True)
class Sizes:
    """The (symbols, years) of each case for one mode."""

    small: tuple[int, int]
    large: tuple[int, int]
    incremental_symbols: int
    incremental_years: int = 2


FULL = Sizes(small=(500, 10), large=(3000, 20), incremental_symbols=3000)
QUICK = Sizes(small=(100, 2), large=(500, 3), incremental_symbols=500)


@dataclass
class Case:
    """One child process: its CLI arguments and the result names it must print."""

    args: list[str]
    names: list[str]
    timeout: float | None = None
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    module: str = "benchmarks.features_bench"


def log(msg: str) -> None:
    """Progress text to stderr."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def emit(line: dict[str, Any]) -> None:
    """One JSON result line on stdout."""
    print(json.dumps(line), flush=True)


def size_tag(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}y"


def run_case(case: Case, extra: dict[str, Any]) -> None:
    """Run `case` in a fresh interpreter, forward its lines (with `extra` keys) to stdout.

    A case that crashes, is killed (e.g. out of memory) or times out still yields a line
    for each expected name, with a null value and an ``error`` key.
    """
    cmd = [sys.executable, "-m", case.module, *case.args]
    log(f"$ {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    error: str | None = None
    stdout = ""
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=case.timeout, check=False
        )
        stdout = proc.stdout
        if proc.returncode != 0:
            error = f"case exited with status {proc.returncode}"
            if proc.returncode < 0:
                error += " (killed by a signal; out of memory?)"
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        error = f"case timed out after {case.timeout:.0f} s"
    for raw in stdout.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            print(raw, file=sys.stderr)
            continue
        line.update(extra)
        case.lines[line["name"]] = line
        emit(line)
    for name in case.names:
        if name not in case.lines:
            line = {"name": name, "value": None, "unit": "s", "pass": False, **extra}
            line["error"] = error or "case printed no result"
            case.lines[name] = line
            emit(line)
    log(f"  done in {time.perf_counter() - t0:.1f} s")


def speedup_line(
    tag: str, pandas: dict[str, Any] | None, polars: dict[str, Any], note: str | None = None
) -> dict[str, Any]:
    """pandas seconds / polars seconds on the same bars (the polars build case's median)."""
    line: dict[str, Any] = {
        "name": f"features_speedup_{tag}",
        "value": None,
        "unit": "x",
        "target": TARGET_SPEEDUP,
        "pass": None,
    }
    p_s, q_s = (pandas or {}).get("value"), polars.get("value")
    if p_s is not None and q_s:
        line["value"] = round(p_s / q_s, 2)
        line["pass"] = line["value"] >= TARGET_SPEEDUP
        line["pandas_s"], line["polars_s"] = p_s, q_s
        if polars.get("min_s") and pandas and pandas.get("min_s"):
            line["best_of_runs"] = round(pandas["min_s"] / polars["min_s"], 2)
        p_cpu, q_cpu = (pandas or {}).get("cpu_s"), polars.get("cpu_s")
        if p_cpu and q_cpu:
            # CPU seconds barely move when other processes compete for the cores.
            line["cpu_ratio"] = round(statistics.median(p_cpu) / statistics.median(q_cpu), 2)
    if note:
        line["note"] = note
    return line


def main(argv: list[str] | None = None) -> int:
    """Run every case in order and print the JSON lines."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke sizes: 100×2y and 500×3y")
    p.add_argument(
        "--full-reference",
        action="store_true",
        help="also run the pandas reference on the large case (may take many minutes)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="per case, seconds")
    args = p.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    small, large = size_tag(sizes.small), size_tag(sizes.large)
    extra: dict[str, Any] = {"mode": "quick"} if args.quick else {}
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"warning: 1-min load average is {load:.2f}; other processes will inflate timings")

    def sz(size: tuple[int, int]) -> list[str]:
        return ["--symbols", str(size[0]), "--years", str(size[1])]

    build_small = Case(
        ["build", *sz(sizes.small), "--repeats", "3", "--target", str(TARGET_SMALL_S)],
        [f"features_build_{small}"],
        args.timeout,
    )
    build_large = Case(
        [
            "build",
            *sz(sizes.large),
            "--target",
            str(TARGET_LARGE_S),
            "--rss-target-mb",
            str(TARGET_LARGE_RSS_MB),
        ],
        [f"features_build_{large}"],
        args.timeout,
    )
    pandas_small = Case(
        ["pandas", *sz(sizes.small), "--parity"],
        [f"features_pandas_{small}", "features_pandas_parity", "features_pandas_parity_gaps"],
        args.timeout,
    )
    pandas_large = Case(["pandas", *sz(sizes.large)], [f"features_pandas_{large}"], None)
    n_inc = sizes.incremental_symbols
    incremental = Case(
        [
            "incremental",
            "--symbols",
            str(n_inc),
            "--years",
            str(sizes.incremental_years),
            "--repeats",
            "5",
            "--target",
            str(TARGET_INCREMENTAL_S),
        ],
        [f"features_incremental_{n_inc}"],
        args.timeout,
    )

    t0 = time.perf_counter()
    cases = [build_small, build_large, pandas_small]
    if args.full_reference:
        cases.append(pandas_large)
    cases.append(incremental)
    eq = (
        ["--symbols", "100", "--years", "3"]
        if args.quick
        else ["--symbols", "500", "--years", "10"]
    )
    cases.append(
        Case(
            ["cpcv", *eq], ["cpcv_lgbm_overhead"], args.timeout, module="benchmarks.equities_bench"
        )
    )
    cases.append(
        Case(
            ["onnx"],
            ["onnx_score_3000", "onnx_score_3000_2threads", "onnx_trees_within_target"],
            args.timeout,
            module="benchmarks.equities_bench",
        )
    )
    bt = "500x3y" if args.quick else "3000x20y"
    cases.append(
        Case(
            ["--quick"] if args.quick else [],
            [f"backtest_{bt}", "backtest_speedup_vs_loop"],
            args.timeout,
            module="benchmarks.backtest_bench",
        )
    )
    cases.append(
        Case(
            ["--quick"] if args.quick else [],
            ["grpo_update_throughput", "grpo_update_throughput_inner2", "grpo_fit_throughput"],
            args.timeout,
            module="benchmarks.policy_bench",
        )
    )
    fc_tag = "20x500" if args.quick else "100x2500"
    cases.append(
        Case(
            ["--quick"] if args.quick else [],
            [f"forecasts_oos_wall_{fc_tag}", f"forecasts_oos_count_{fc_tag}"],
            args.timeout,
            module="benchmarks.forecasts_bench",
        )
    )
    stk = "100x2y" if args.quick else "500x10y"
    cases.append(
        Case(
            ["train", *(["--quick"] if args.quick else [])],
            [f"stacker_train_{stk}", "stacker_path_metrics_speedup_vs_polars"],
            args.timeout,
            module="benchmarks.stacker_bench",
        )
    )
    cases.append(
        Case(
            ["serve", *(["--quick"] if args.quick else [])],
            ["alpha_to_sized_500" if args.quick else "alpha_to_sized_3000"],
            args.timeout,
            module="benchmarks.stacker_bench",
        )
    )
    cases.append(
        Case(
            ["all", *(["--quick"] if args.quick else [])],
            [
                "ope_bootstrap_1m",
                "ope_bootstrap_1m_long",
                "ope_bootstrap_1m_bandit",
                "fqe_throughput",
                "fqe_generic_iter_throughput",
                "cql_train_throughput",
            ],
            args.timeout,
            module="benchmarks.offline_rl_bench",
        )
    )
    cli = "100x3y" if args.quick else "3000x20y"
    cases.append(
        Case(
            ["--quick"] if args.quick else [],
            [
                f"cli_bars_backfill_{cli}",
                f"cli_features_backfill_{cli}",
                f"cli_daily_then_trade_{cli.split('x')[0]}",
            ],
            args.timeout,
            module="benchmarks.cli_bench",
        )
    )
    cases.append(
        Case([], ["service_cached_answer"], args.timeout, module="benchmarks.service_bench")
    )
    seq = "50x2y" if args.quick else "500x10y"
    cases.append(
        Case(
            ["--quick"] if args.quick else [],
            [f"lstm_epoch_{seq}", f"patchtst_epoch_{seq}"],
            args.timeout,
            module="benchmarks.sequence_bench",
        )
    )
    cases.append(
        Case(
            ["--steps", "5000"] if args.quick else [],
            ["ppo_env_steps_per_s", "sac_env_steps_per_s"],
            args.timeout,
            module="benchmarks.agents_bench",
        )
    )
    for case in cases:
        run_case(case, extra)

    emit(
        speedup_line(
            small,
            pandas_small.lines.get(f"features_pandas_{small}"),
            build_small.lines[f"features_build_{small}"],
        )
        | extra
    )
    if args.full_reference:
        large_line = speedup_line(
            large,
            pandas_large.lines.get(f"features_pandas_{large}"),
            build_large.lines[f"features_build_{large}"],
        )
    else:
        large_line = speedup_line(
            large,
            None,
            build_large.lines[f"features_build_{large}"],
            note="pandas reference not run at this size (many minutes); pass --full-reference",
        )
    emit(large_line | extra)
    log(f"all cases done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
