"""The evaluation suite every sleeve's training and the stacker report: one function over
(prediction, realized target, period) rows, and a paired bootstrap for the difference of any
metric between two models scored on the same rows.

Definitions (per period = one decision session or week; averaged over periods):

- MAE, RMSE, R² = 1 − SS_res / SS_tot, sMAPE = mean 2|p − y| / (|p| + |y|) (a row with
  p = y = 0 counts 0) — over all rows.
- IC (Pearson) and rank IC (Spearman) of prediction and target within a period.
- top-k with k = min(`k`, the period's rows): the predicted top k against the winners (y > 0):
  precision@k = winners among them / k, recall@k = winners among them / all winners (periods
  without a winner are skipped); NDCG@k with gain = the target's percentile rank in its
  period (0 … 1), DCG = Σ gain_i / log2(i + 1) over the predicted top k, divided by the DCG of
  the ideal order.
- coverage = rows scored / rows expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "Evaluation",
    "evaluate",
    "evaluation_figures",
    "oof_rows",
    "paired_bootstrap",
    "paired_rank_ic_bootstrap",
    "per_period_rank_ic",
    "rank_ic_metric",
    "regression_metrics",
    "topk_metrics",
]


def _arrays(pred: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"evaluation: prediction {p.shape} and target {t.shape} differ in shape")
    return p, t


def regression_metrics(pred: Any, y: Any) -> dict[str, float]:
    """MAE, RMSE, R² and sMAPE over finite rows (module docstring)."""
    p, t = _arrays(pred, y)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    if not p.size:
        return {k: math.nan for k in ("mae", "rmse", "r2", "smape")}
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum())
    denom = np.abs(p) + np.abs(t)
    ratio = np.divide(2.0 * np.abs(err), denom, out=np.zeros_like(err), where=denom > 0)
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else math.nan,
        "smape": float(ratio.mean()),
    }


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs), 0-based."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts
    return (start + (counts - 1) / 2.0)[inverse].astype(np.float64)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def topk_metrics(pred: Any, y: Any, k: int) -> dict[str, float]:
    """precision@k, recall@k and NDCG@k of one period (module docstring)."""
    p, t = _arrays(pred, y)
    n = p.size
    kk = min(k, n)
    if kk < 1:
        return {"precision_at_k": math.nan, "recall_at_k": math.nan, "ndcg_at_k": math.nan}
    top = np.argsort(-p, kind="mergesort")[:kk]
    winners = t > 0
    hits = int(winners[top].sum())
    gain = _rank(t) / (n - 1) if n > 1 else np.ones(1)
    discount = 1.0 / np.log2(np.arange(2, kk + 2))
    dcg = float((gain[top] * discount).sum())
    ideal = float((np.sort(gain)[::-1][:kk] * discount).sum())
    return {
        "precision_at_k": hits / kk,
        "recall_at_k": hits / int(winners.sum()) if winners.any() else math.nan,
        "ndcg_at_k": dcg / ideal if ideal > 0 else math.nan,
    }


@dataclass(frozen=True)
class Evaluation:
    """Scalar metrics, per-period metrics (period, n, ic, rank_ic, precision/recall/ndcg@k),
    and the residuals (prediction − target) the histogram shows."""

    metrics: dict[str, float]
    per_period: pl.DataFrame
    residuals: np.ndarray


def evaluate(
    pred: Any, y: Any, period: Any, *, k: int = 50, expected_rows: int | None = None
) -> Evaluation:
    """The suite over rows (prediction, target, period); rows with a missing prediction or
    target are not scored (coverage says how many were)."""
    p, t = _arrays(pred, y)
    per = np.asarray(period)
    if per.shape != p.shape:
        raise ValueError("evaluation: period must have one value per row")
    ok = np.isfinite(p) & np.isfinite(t)
    rows = []
    for value in np.unique(per[ok]):
        sel = ok & (per == value)
        a, b = p[sel], t[sel]
        rows.append(
            {
                "period": value.item() if isinstance(value, np.generic) else value,
                "n": int(sel.sum()),
                "ic": _corr(a, b),
                "rank_ic": _corr(_rank(a), _rank(b)),
                **topk_metrics(a, b, k),
            }
        )
    frame = pl.DataFrame(rows) if rows else pl.DataFrame({"period": [], "n": []})
    metrics = regression_metrics(p, t)
    for col in ("ic", "rank_ic", "precision_at_k", "recall_at_k", "ndcg_at_k"):
        vals = frame.get_column(col).to_numpy() if col in frame.columns else np.array([])
        vals = vals[np.isfinite(vals)] if vals.size else vals
        metrics[col] = float(vals.mean()) if vals.size else math.nan
    ic = frame.get_column("ic").drop_nans().drop_nulls() if "ic" in frame.columns else None
    metrics["ic_t"] = (
        float(ic.mean() / ic.std() * math.sqrt(ic.len()))
        if ic is not None and ic.len() > 1 and (ic.std() or 0) > 0
        else math.nan
    )
    expected = expected_rows if expected_rows is not None else p.size
    metrics["coverage"] = float(ok.sum()) / expected if expected else math.nan
    metrics["k"] = float(k)
    metrics["periods"] = float(frame.height)
    return Evaluation(metrics, frame, p[ok] - t[ok])


def evaluation_figures(ev: Evaluation, title: str) -> dict[str, Any]:
    """The residual histogram and the per-period IC bars (matplotlib figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(ev.residuals, bins=50, color="tab:blue", alpha=0.8)
    ax.set_title(f"{title}: residuals (prediction − target)")
    ax.set_xlabel("residual")
    ax.set_ylabel("rows")
    hist.tight_layout()
    bars, ax = plt.subplots(figsize=(7, 3.5))
    if ev.per_period.height and "ic" in ev.per_period.columns:
        ic = ev.per_period.get_column("ic").fill_nan(0.0).fill_null(0.0).to_numpy()
        ax.bar(np.arange(ic.size), ic, color=np.where(ic >= 0, "tab:green", "tab:red"), width=1.0)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_title(f"{title}: IC per period (mean {ev.metrics.get('ic', math.nan):.3f})")
    ax.set_xlabel("period")
    ax.set_ylabel("IC")
    bars.tight_layout()
    return {"evaluation/residuals.png": hist, "evaluation/ic_by_period.png": bars}


@dataclass(frozen=True)
class BootstrapDiff:
    """metric(a) − metric(b) on the rows, and its (lo, hi) percentile interval."""

    diff: float
    lo: float
    hi: float
    level: float
    n_boot: int


def _paired_rows(
    pred_a: Any, pred_b: Any, y: Any, period: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows where both models and the target are finite: (a, b, y, period)."""
    a, t = _arrays(pred_a, y)
    b, _ = _arrays(pred_b, y)
    per = np.asarray(period)
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(t)
    return a[ok], b[ok], t[ok], per[ok]


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
    pred_a: Any,
    pred_b: Any,
    y: Any,
    period: Any,
    *,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> BootstrapDiff:
    """Interval on metric(a) − metric(b), both models on the same rows, resampling whole
    periods with replacement (rows of a period move together, which keeps their
    cross-sectional dependence). `metric(pred, y, period)` returns one number."""
    a, b, t, per = _paired_rows(pred_a, pred_b, y, period)
    labels, codes = np.unique(per, return_inverse=True)
    if labels.size < 2:
        raise ValueError("paired bootstrap: at least 2 periods are needed")
    rows_of = [np.flatnonzero(codes == i) for i in range(labels.size)]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, labels.size, labels.size)
        idx = np.concatenate([rows_of[j] for j in pick])
        new_period = np.repeat(np.arange(labels.size), [rows_of[j].size for j in pick])
        diffs[i] = metric(a[idx], t[idx], new_period) - metric(b[idx], t[idx], new_period)
    point = metric(a, t, codes) - metric(b, t, codes)
    tail = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(diffs, [tail, 1.0 - tail])
    return BootstrapDiff(float(point), float(lo), float(hi), level, n_boot)


def oof_rows(oof: pl.DataFrame, labels: pl.DataFrame, target: str) -> pl.DataFrame:
    """(date, symbol, pred, y): a sleeve's out-of-fold rows (the mean of its `oof_path_<p>`
    columns) with the realized `target` of the same (date, symbol); rows whose target is
    missing keep y null (they lower coverage)."""
    paths = [c for c in oof.columns if c.startswith("oof_path_")]
    if not paths:
        raise ValueError("evaluation: the OOF frame has no oof_path_<p> columns")
    if target not in labels.columns:
        raise ValueError(f"evaluation: labels lack the target column {target!r}")
    pred = oof.select(
        "date", "symbol", pl.mean_horizontal([pl.col(c) for c in paths]).alias("pred")
    )
    y = labels.select("date", "symbol", pl.col(target).cast(pl.Float64).alias("y"))
    return pred.join(y, on=["date", "symbol"], how="left").sort("date", "symbol")


def per_period_rank_ic(pred: np.ndarray, y: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Rank IC of each period (in the order of `np.unique(period)`; NaN where undefined)."""
    return np.asarray(
        [_corr(_rank(pred[period == v]), _rank(y[period == v])) for v in np.unique(period)]
    )


def rank_ic_metric(pred: np.ndarray, y: np.ndarray, period: np.ndarray) -> float:
    """Mean per-period rank IC (the metric the sleeves are compared by)."""
    vals = per_period_rank_ic(pred, y, period)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else math.nan


def paired_rank_ic_bootstrap(
    pred_a: Any,
    pred_b: Any,
    y: Any,
    period: Any,
    *,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> BootstrapDiff:
    """`paired_bootstrap(rank_ic_metric, …)`, computed once per period: a resampled period
    keeps its rank IC, so each replicate is a mean over the drawn periods' ICs — the same
    numbers without re-ranking (periods where either IC is undefined are left out)."""
    a, b, t, per = _paired_rows(pred_a, pred_b, y, period)
    ic_a, ic_b = per_period_rank_ic(a, t, per), per_period_rank_ic(b, t, per)
    keep = np.isfinite(ic_a) & np.isfinite(ic_b)
    ic_a, ic_b = ic_a[keep], ic_b[keep]
    if ic_a.size < 2:
        raise ValueError("paired bootstrap: at least 2 periods are needed")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, ic_a.size, (n_boot, ic_a.size))
    diffs = ic_a[picks].mean(axis=1) - ic_b[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [tail, 1.0 - tail])
    return BootstrapDiff(float(ic_a.mean() - ic_b.mean()), float(lo), float(hi), level, n_boot)
