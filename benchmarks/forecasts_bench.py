"""OOS forecast-signal benchmark: PatchTST + NHITS walk-forward forecasts, default models.

`python -m benchmarks.forecasts_bench` times `oos_forecasts` (refit=False: one training at
the fixed cutoff, then cross_validation(use_fitted=True) over every later session) on
100 symbols × 2500 sessions of the synthetic market; `--quick` uses 20 × 500. With
`--reference` it also times NeuralForecast's own one-call `cross_validation(refit=False)`
over the same windows (which fits on the whole frame minus the test block) for a ratio.
JSON lines on stdout, progress on stderr. The neuralforecast import is not timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import Any

import numpy as np
import polars as pl

TARGET_S_FULL = 900.0
TARGET_S_QUICK = 90.0
TRAIN_FRACTION = 0.2


def _log(msg: str) -> None:
    print(f"[forecasts_bench] {msg}", file=sys.stderr, flush=True)


def _emit(name: str, value: Any, unit: str, **extra: Any) -> None:
    print(json.dumps({"name": name, "value": value, "unit": unit, **extra}), flush=True)


def _bars(symbols: int, sessions: int) -> tuple[pl.DataFrame, list[dt.date]]:
    from trademl.data.calendar import get_calendar
    from trademl.data.synthetic import SyntheticMarket, SyntheticSpec

    cal = get_calendar("XNYS", dt.date(2000, 1, 3))
    end = cal.latest_completed_session()
    start = cal.sessions[cal.index(end) - (sessions - 1)]
    bars = SyntheticMarket(SyntheticSpec(n_symbols=symbols, start=start), cal).load(end=end)
    return bars, cal.sessions_in_range(start, end)


def _mean_rank_ic(oos: pl.DataFrame) -> float | None:
    """Mean over sessions of the cross-sectional Spearman correlation of y_hat with y."""
    known = oos.filter(pl.col("y").is_not_null())
    if known.height == 0:
        return None
    per_day = known.group_by("date").agg(
        pl.corr(pl.col("y_hat").rank(), pl.col("y").rank()).alias("ic")
    )
    ic = per_day["ic"].drop_nulls().drop_nans()
    return None if ic.len() == 0 else round(float(ic.mean()), 4)


def _reference(bars: pl.DataFrame, train_idx: int, params: Any) -> tuple[float, float, int]:
    """NeuralForecast's one-call cross_validation(refit=False) on the same windows."""
    from trademl.models.forecasts.engine import make_models, quiet, torch_threads
    from trademl.models.forecasts.series import returns_panel, training_frame

    panel = returns_panel(bars)
    last = int(panel["ds"].max())
    df = training_frame(panel, (), last)  # the same masked, dense series as ours
    # its windows end h sessions before the data ends (no padding), so: last − h − t0 + 1
    n_windows = last - params.h - train_idx + 1
    with quiet(), torch_threads(params):
        from neuralforecast import NeuralForecast

        t0, c0 = time.perf_counter(), time.process_time()
        nf = NeuralForecast(models=make_models(params, ()), freq=1)
        cv = nf.cross_validation(df=df, n_windows=n_windows, step_size=1, refit=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, int(cv.filter(pl.col("ds") == pl.col("cutoff") + params.h).height)


def run(symbols: int, sessions: int, reference: bool, quick: bool) -> None:
    from trademl.models.forecasts import ForecastParams, oos_forecasts

    params = ForecastParams()
    bars, days = _bars(symbols, sessions)
    train_idx = max(params.input_size + params.h, int(TRAIN_FRACTION * len(days)))
    _log(f"{symbols} symbols × {len(days)} sessions, train_end = session {train_idx}")
    t0 = time.perf_counter()
    from trademl.models.forecasts.engine import quiet

    with quiet():
        import neuralforecast  # noqa: F401  (import cost is not part of the measure)
    _log(f"neuralforecast import {time.perf_counter() - t0:.1f} s; warm-up …")
    warm = bars.filter(pl.col("symbol").is_in(sorted(bars["symbol"].unique())[:2]))
    oos_forecasts(warm, None, ForecastParams.tiny(), train_end=days[train_idx])  # untimed
    load0 = os.getloadavg()[0]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    oos = oos_forecasts(bars, None, params, train_end=days[train_idx])
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    n = oos.height
    target = TARGET_S_QUICK if quick else TARGET_S_FULL
    tag = f"{symbols}x{len(days)}"
    extra: dict[str, Any] = {"mode": "quick"} if quick else {}
    _emit(
        f"forecasts_oos_wall_{tag}",
        round(wall, 2),
        "s",
        target=target,
        ok=wall <= target,
        forecasts=n,
        forecasts_per_s=round(n / wall, 1),
        cpu_s=round(cpu, 1),
        sessions_forecast=oos["date"].n_unique(),
        trainings=1,
        max_steps=params.max_steps,
        input_size=params.input_size,
        mean_rank_ic=_mean_rank_ic(oos),
        loadavg_1m=[round(load0, 2), round(os.getloadavg()[0], 2)],
        **extra,
    )
    _emit(f"forecasts_oos_count_{tag}", n, "forecasts", target=None, ok=n > 0, **extra)
    if reference:
        _log("reference: NeuralForecast.cross_validation(refit=False) in one call …")
        ref_wall, ref_cpu, ref_n = _reference(bars, train_idx, params)
        _emit(
            f"forecasts_reference_ratio_{tag}",
            round(wall / ref_wall, 3),
            "ours / neuralforecast one-call CV wall",
            target=None,
            ok=bool(np.isfinite(ref_wall)),
            ours_s=round(wall, 2),
            reference_s=round(ref_wall, 2),
            cpu_ratio=round(cpu / ref_cpu, 3),
            ours_cpu_s=round(cpu, 1),
            reference_cpu_s=round(ref_cpu, 1),
            reference_forecasts=ref_n,
            loadavg_1m=round(os.getloadavg()[0], 2),
            **extra,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.forecasts_bench")
    p.add_argument("--quick", action="store_true", help="20 symbols × 500 sessions")
    p.add_argument("--symbols", type=int, default=None)
    p.add_argument("--sessions", type=int, default=None)
    p.add_argument("--reference", action="store_true", help="also time NF's one-call CV")
    a = p.parse_args(argv)
    symbols = a.symbols or (20 if a.quick else 100)
    sessions = a.sessions or (500 if a.quick else 2500)
    run(symbols, sessions, a.reference, a.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
