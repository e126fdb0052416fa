"""Input drift: the population stability index (PSI) of each feature between a reference
window and a recent one — PSI = Σ_b (q_b − p_b)·ln(q_b / p_b) over the reference's decile bins
(p: reference shares, q: recent shares). Rules of thumb: < 0.1 stable, > 0.25 a shift worth a
retrain."""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["feature_drift", "psi"]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, floor: float = 1e-4) -> float:
    """PSI of `current` against `reference` over the reference's quantile bins; shares are
    floored at `floor` so an empty bin is a large, finite term. NaN without data."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    p = np.maximum(p / ref.size, floor)
    q = np.maximum(q / cur.size, floor)
    return float(np.sum((q - p) * np.log(q / p)))


def feature_drift(
    reference: pl.DataFrame, current: pl.DataFrame, columns: list[str], bins: int = 10
) -> dict[str, float]:
    """{feature: PSI} of each numeric column, pooled over names and sessions."""
    return {
        c: psi(reference.get_column(c).to_numpy(), current.get_column(c).to_numpy(), bins)
        for c in columns
        if c in reference.columns and c in current.columns
    }
