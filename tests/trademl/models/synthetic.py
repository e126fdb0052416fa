"""Synthetic data with planted signals for the model tests."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

N_FEATURES = 8


def planted_regression(
    n: int, seed: int, *, nan_frac: float = 0.0, signal: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """X ~ N(0, 1) [n, 8]; y = 0.5·x0 − 0.3·x1 + 0.5·ε (or pure noise); NaNs after y."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    noise = 0.5 * rng.normal(size=n)
    y = (0.5 * X[:, 0] - 0.3 * X[:, 1] + noise) if signal else noise
    if nan_frac > 0:
        X[rng.random(X.shape) < nan_frac] = np.nan
    return X, y


def planted_binary(n: int, seed: int, *, nan_frac: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """y ~ Bernoulli(sigmoid(1.5·x0 − 1.0·x1)) in {0, 1}."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    p = 1.0 / (1.0 + np.exp(-(1.5 * X[:, 0] - 1.0 * X[:, 1])))
    y = (rng.random(n) < p).astype(np.int64)
    if nan_frac > 0:
        X[rng.random(X.shape) < nan_frac] = np.nan
    return X, y


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the Mann–Whitney rank statistic (ties get average ranks)."""
    y = np.asarray(y).astype(bool)
    ranks = rankdata(score)
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation."""
    return float(np.corrcoef(a, b)[0, 1])
