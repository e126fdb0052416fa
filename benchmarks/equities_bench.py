"""Equities alpha benchmarks: CPCV(8, 2) LightGBM overhead, and ONNX scoring of 3000 rows.

Run by `benchmarks.run`; each case prints JSON lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

import numpy as np

TARGET_OVERHEAD = 0.10
TARGET_ONNX_MS = 5.0


def _log(msg: str) -> None:
    print(f"[equities_bench] {msg}", file=sys.stderr, flush=True)


def cpcv(symbols: int, years: int) -> dict:
    """Total wall of one CPCV(8, 2) LightGBM pass vs the sum of its raw fit times."""
    from trademl.config import FeatureConfig, LabelConfig
    from trademl.data.calendar import get_calendar
    from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
    from trademl.features import build_features, feature_names
    from trademl.labels import compute_labels
    from trademl.models.equities.dataset import build_dataset
    from trademl.models.equities.estimators import make_estimator
    from trademl.models.equities.train import cross_validate
    from trademl.validation.cpcv import CombinatorialPurgedCV

    cal = get_calendar("XNYS", dt.date(2000, 1, 3))
    end = cal.latest_completed_session()
    start = cal.sessions[cal.index(end) - 252 * years]
    _log(f"generating {symbols} symbols × {years}y, features and labels …")
    bars = SyntheticMarket(SyntheticSpec(n_symbols=symbols, start=start), cal).load(end=end)
    sessions = cal.sessions_in_range(start, end)
    fc = FeatureConfig()
    feats = build_features(bars, sessions, cross_sectional=fc.cross_sectional)
    labels = compute_labels(bars, sessions, LabelConfig())
    names = feature_names(fc.cross_sectional)
    ds = build_dataset(
        feats, labels, label="fwd_ret_5", as_of=end, sessions=cal.sessions, feature_names=names
    )
    cv = CombinatorialPurgedCV(n_groups=8, n_test_groups=2, embargo=10)
    params = {"n_estimators": 100, "num_leaves": 63, "learning_rate": 0.05, "n_jobs": 2}
    _log(f"CPCV(8, 2) on {len(ds):,} rows × {len(names)} features, 28 LightGBM fits …")
    res = cross_validate(ds, cv, lambda: make_estimator("lgbm", params))
    overhead = (res.total_seconds - res.fit_seconds) / res.fit_seconds
    return {
        "name": "cpcv_lgbm_overhead",
        "value": round(overhead, 4),
        "unit": "fraction of raw fit time",
        "target": TARGET_OVERHEAD,
        "pass": overhead <= TARGET_OVERHEAD,
        "total_s": round(res.total_seconds, 2),
        "raw_fit_s": round(res.fit_seconds, 2),
        "rows": len(ds),
        "features": len(names),
        "splits": cv.get_n_splits(),
        "params": params,
    }


def onnx() -> dict:
    """Median ONNX scoring time of 3000 rows × 38 features, with native LightGBM beside it."""
    from trademl.models.equities.estimators import make_estimator
    from trademl.models.equities.onnx_export import OnnxScorer, to_onnx

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, 38))
    y = x[:, 0] * 0.1 + rng.normal(size=50_000)
    model = make_estimator("lgbm", {"n_estimators": 200, "num_leaves": 63, "n_jobs": 1}).fit(x, y)
    scorer = OnnxScorer(to_onnx(model, 38))
    rows = rng.normal(size=(3000, 38)).astype(np.float32)
    for _ in range(5):
        scorer.predict(rows)

    def median_ms(fn) -> float:
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    onnx_ms = median_ms(lambda: scorer.predict(rows))
    native_ms = median_ms(lambda: model.predict(rows.astype(np.float64)))
    return {
        "name": "onnx_score_3000",
        "value": round(onnx_ms, 3),
        "unit": "ms",
        "target": TARGET_ONNX_MS,
        "pass": onnx_ms <= TARGET_ONNX_MS,
        "native_lightgbm_ms": round(native_ms, 3),
        "ratio_native_over_onnx": round(native_ms / onnx_ms, 2),
        "trees": 200,
        "features": 38,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.equities_bench")
    p.add_argument("case", choices=["cpcv", "onnx"])
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--years", type=int, default=10)
    a = p.parse_args(argv)
    line = cpcv(a.symbols, a.years) if a.case == "cpcv" else onnx()
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
