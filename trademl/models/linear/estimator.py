"""`LinearAlpha`: ridge or elastic net on the standardized features — the strong, cheap
baseline at low signal-to-noise.

The features arrive z-scored by the sleeve's FeatureStore; a missing value becomes 0 (the
training mean) and every value is clipped to ±`clip` σ, in `fit`, `predict` and the ONNX graph
alike (train as you serve). The objective is scikit-learn's elastic net,
(1 / 2Σw)·Σ wᵢ(yᵢ − xᵢβ − b)² + α·l1_ratio·‖β‖₁ + ½α(1 − l1_ratio)·‖β‖²; with l1_ratio = 0
(ridge) it is solved in closed form, otherwise by scikit-learn's coordinate descent.
"""

from __future__ import annotations

import json
from typing import Any, Self

import numpy as np

from trademl.models.equities.estimators import (
    NotFittedError,
    _as_matrix,
    _as_target,
    _as_weights,
    _ParamsMixin,
)

__all__ = ["LINEAR_GRID", "LinearAlpha", "NotFittedError"]

#: Penalties searched by the sleeve's HPO (every one recorded for DSR/PBO).
LINEAR_GRID: dict[str, list[Any]] = {
    "alpha": [0.001, 0.01, 0.1, 1.0, 10.0],
    "l1_ratio": [0.0],
}


class LinearAlpha(_ParamsMixin):
    """Penalized linear regression on standardized features (sklearn-shaped, deterministic).

    Parameters
    ----------
    alpha : overall penalty strength (≥ 0).
    l1_ratio : share of the L1 penalty in [0, 1]; 0 is ridge.
    clip : features are clipped to ±clip after imputing missing values with 0.
    """

    is_classifier = False

    def __init__(self, *, alpha: float = 1.0, l1_ratio: float = 0.0, clip: float = 5.0) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.clip = clip

    def _prepare(self, X: Any, n_features: int | None = None) -> np.ndarray:
        x = _as_matrix(X, n_features).astype(np.float64, copy=True)
        np.nan_to_num(x, copy=False, nan=0.0, posinf=self.clip, neginf=-self.clip)
        return np.clip(x, -self.clip, self.clip, out=x)

    def fit(self, X: Any, y: Any, *, sample_weight: Any = None) -> Self:
        """Fit β and b; returns self."""
        if not (self.alpha >= 0 and 0.0 <= self.l1_ratio <= 1.0 and self.clip > 0):
            raise ValueError(
                f"LinearAlpha needs alpha ≥ 0, 0 ≤ l1_ratio ≤ 1 and clip > 0, got {self!r}"
            )
        x = self._prepare(X)
        t = _as_target(y, x.shape[0], binary=False)
        w = _as_weights(sample_weight, x.shape[0])
        w = np.ones(x.shape[0]) if w is None else w
        w = w / w.sum()
        x_mean, y_mean = w @ x, float(w @ t)
        xc = x - x_mean
        yc = t - y_mean
        if self.l1_ratio == 0.0:
            gram = (xc * w[:, None]).T @ xc
            gram[np.diag_indices_from(gram)] += self.alpha
            coef = np.linalg.solve(gram, (xc * w[:, None]).T @ yc)
        else:
            from sklearn.linear_model import ElasticNet

            net = ElasticNet(
                alpha=self.alpha,
                l1_ratio=self.l1_ratio,
                fit_intercept=False,
                max_iter=5000,
                tol=1e-6,
                selection="cyclic",
            )
            net.fit(xc, yc, sample_weight=w * x.shape[0])
            coef = np.asarray(net.coef_, dtype=np.float64)
        self.coef_ = coef
        self.intercept_ = float(y_mean - x_mean @ coef)
        self.n_features_in_ = x.shape[1]
        self.feature_importance_ = np.abs(coef)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """xβ + b per row (float64)."""
        self._check_fitted()
        return self._prepare(X, self.n_features_in_) @ self.coef_ + self.intercept_

    def native_bytes(self) -> bytes:
        """The fitted model as JSON (coefficients, intercept, hyperparameters)."""
        self._check_fitted()
        return json.dumps(
            {**self.get_params(), "coef": self.coef_.tolist(), "intercept": self.intercept_},
            indent=1,
        ).encode()

    @classmethod
    def from_native(cls, data: bytes) -> LinearAlpha:
        d = json.loads(data)
        est = cls(alpha=d["alpha"], l1_ratio=d["l1_ratio"], clip=d["clip"])
        est.coef_ = np.asarray(d["coef"], dtype=np.float64)
        est.intercept_ = float(d["intercept"])
        est.n_features_in_ = est.coef_.size
        est.feature_importance_ = np.abs(est.coef_)
        return est

    def to_onnx(self) -> bytes:
        """ONNX graph: NaN → 0, clip ±clip, x·β + b; float32 [n, F] in, float32 [n] out."""
        import onnx
        from onnx import TensorProto, helper

        self._check_fitted()
        f = self.n_features_in_
        c = np.float32(self.clip)
        inits = [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("lo", TensorProto.FLOAT, [], [-c]),
            helper.make_tensor("hi", TensorProto.FLOAT, [], [c]),
            helper.make_tensor("coef", TensorProto.FLOAT, [f, 1], self.coef_.astype(np.float32)),
            helper.make_tensor("bias", TensorProto.FLOAT, [1], [np.float32(self.intercept_)]),
            helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
        ]
        nodes = [
            helper.make_node("IsNaN", ["input"], ["missing"]),
            helper.make_node("Where", ["missing", "zero", "input"], ["filled"]),
            helper.make_node("Clip", ["filled", "lo", "hi"], ["clipped"]),
            helper.make_node("MatMul", ["clipped", "coef"], ["dot"]),
            helper.make_node("Add", ["dot", "bias"], ["score"]),
            helper.make_node("Reshape", ["score", "flat"], ["variable"]),
        ]
        graph = helper.make_graph(
            nodes,
            "trademl_linear",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, f])],
            [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None])],
            initializer=inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
        model.ir_version = 8
        helper.set_model_props(
            model,
            {
                "trademl.estimator": "linear",
                "trademl.task": "regression",
                "trademl.n_features": str(f),
            },
        )
        onnx.checker.check_model(model)
        return model.SerializeToString()
