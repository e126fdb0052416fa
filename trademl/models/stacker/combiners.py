"""How the stacker combines normalized sleeve scores: non-negative least squares (weights ≥ 0,
rescaled to sum to 1), positive ridge, or a shallow monotone LightGBM.

The linear combiners are fit from sufficient statistics — the Gram matrix ZᵀZ and Zᵀy of the
training rows — so fitting one weight vector per (path, test group) costs S×S work once the
statistics exist, whatever the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Gram", "MonotoneGBM", "fit_linear", "gram"]

Method = Literal["nnls", "positive_ridge", "lgbm_monotone"]


@dataclass(frozen=True)
class Gram:
    """Sufficient statistics of a least-squares fit: ZᵀZ [S, S], Zᵀy [S], row count."""

    zz: np.ndarray
    zy: np.ndarray
    n: float

    def __add__(self, other: Gram) -> Gram:
        return Gram(self.zz + other.zz, self.zy + other.zy, self.n + other.n)

    def __sub__(self, other: Gram) -> Gram:
        return Gram(self.zz - other.zz, self.zy - other.zy, self.n - other.n)


def gram(z: np.ndarray, y: np.ndarray) -> Gram:
    """Statistics of rows `z` [n, S] against target `y` [n]."""
    return Gram(z.T @ z, z.T @ y, float(z.shape[0]))


def fit_linear(g: Gram, *, method: Method, ridge_alpha: float = 0.0) -> np.ndarray:
    """Weights w ≥ 0 minimizing ‖Zw − y‖² (+ α·mean(diag ZᵀZ)·‖w‖² for positive ridge),
    rescaled to sum to 1; all zeros when no positive combination helps (then the stacker
    predicts nothing and its gate fails closed)."""
    s = g.zz.shape[0]
    if g.n <= 0 or s == 0:
        return np.zeros(s)
    zz = g.zz.copy()
    scale = float(np.trace(zz)) / s if s else 0.0
    if method == "positive_ridge":
        zz[np.diag_indices(s)] += ridge_alpha * scale
    zz[np.diag_indices(s)] += 1e-10 * max(scale, 1e-300)  # duplicated sleeves stay solvable
    chol = np.linalg.cholesky(zz)
    rhs = np.linalg.solve(chol, g.zy)  # ‖Lᵀw − L⁻¹Zᵀy‖² = ‖Zw − y‖² − const
    from scipy.optimize import nnls  # here: scipy.optimize costs every CLI start ≈ 0.3 s

    w, _ = nnls(chol.T, rhs)
    total = w.sum()
    return w / total if total > 0 else np.zeros(s)


class MonotoneGBM:
    """A shallow LightGBM non-decreasing in every sleeve's score (depth 2, `trees` rounds)."""

    def __init__(self, *, trees: int = 50, seed: int = 7) -> None:
        self.trees, self.seed = trees, seed

    def fit(self, z: np.ndarray, y: np.ndarray) -> MonotoneGBM:
        import lightgbm as lgb

        params = {
            "objective": "regression",
            "max_depth": 2,
            "num_leaves": 4,
            "learning_rate": 0.1,
            "min_data_in_leaf": max(50, z.shape[0] // 200),
            "monotone_constraints": [1] * z.shape[1],
            "monotone_constraints_method": "advanced",
            "seed": self.seed,
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        booster = lgb.train(params, lgb.Dataset(z, y, params=params), num_boost_round=self.trees)
        self.text_ = booster.model_to_string()
        self.booster_ = booster
        return self

    @classmethod
    def from_text(cls, text: str) -> MonotoneGBM:
        import lightgbm as lgb

        m = cls()
        m.text_, m.booster_ = text, lgb.Booster(model_str=text)
        return m

    def predict(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(z, num_threads=1), dtype=np.float64)
