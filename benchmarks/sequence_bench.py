"""Sequence forecaster training throughput (JSON lines)::

    python -m benchmarks.sequence_bench [--names 500 --years 10 | --quick]

Weekly samples (`trademl.models.forecasts.weekly.weekly_samples`) of a synthetic market of
`names` names × `years` years of sessions, then one training epoch of the LSTM (60 sessions,
the `ret` channel, hidden 32) and of the multichannel PatchTST (64 sessions, 4 OHLCV-like
channels, patches of 8, 4 layers) on CPU with the platform's defaults: seconds per epoch over
the training part (80% of the weeks).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import time

import numpy as np
import polars as pl


def _market(names: int, years: int, seed: int = 0) -> tuple[pl.DataFrame, list[dt.date]]:
    rng = np.random.default_rng(seed)
    days = [
        d
        for d in (dt.date(2010, 1, 1) + dt.timedelta(i) for i in range(years * 366))
        if d.weekday() < 5
    ]
    days = days[: years * 252]
    r = 0.015 * rng.standard_normal((len(days), names))
    close = 100 * np.exp(np.cumsum(r, axis=0))
    open_ = close * np.exp(0.003 * rng.standard_normal(close.shape))
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    vol = np.exp(12 + 0.3 * rng.standard_normal(close.shape))
    frame = pl.DataFrame(
        {
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), names),
            "symbol": [f"S{i:03d}" for i in range(names)] * len(days),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": vol.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    return frame, days


def main(argv: list[str] | None = None) -> int:
    from trademl.models.forecasts.sequence import SequenceParams, train_forecaster
    from trademl.models.forecasts.weekly import weekly_samples

    p = argparse.ArgumentParser(prog="python -m benchmarks.sequence_bench", description=__doc__)
    p.add_argument("--names", type=int, default=500)
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="50 names × 2 years")
    args = p.parse_args(argv)
    names, years = (50, 2) if args.quick else (args.names, args.years)
    bars, days = _market(names, years)
    cases = [
        ("lstm", SequenceParams(kind="lstm", seq_len=60, n_channels=1), ["ret"]),
        (
            "patchtst",
            SequenceParams(kind="patchtst", seq_len=64, n_channels=4),
            ["ret", "gap", "range", "volume"],
        ),
    ]
    for kind, params, channels in cases:
        t0 = time.perf_counter()
        samples = weekly_samples(bars, days, seq_len=params.seq_len, horizon=5, channels=channels)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        one = dataclasses.replace(params, max_epochs=1)
        model = train_forecaster(samples, one)
        epoch = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "name": f"{kind}_epoch_{names}x{years}y",
                    "value": round(epoch, 2),
                    "unit": "s",
                    "train_sequences": int(model.metrics["n_train"]),
                    "sequences_per_s": round(model.metrics["n_train"] / epoch),
                    "samples_build_s": round(build, 2),
                    "threads": __import__("torch").get_num_threads(),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
