"""The linear sleeve's estimator: closed-form ridge, sparse elastic net, NaN/outlier handling,
and an ONNX graph that scores exactly as `predict`."""

from __future__ import annotations

import numpy as np
import pytest

from trademl.models.equities.estimators import make_estimator
from trademl.models.equities.onnx_export import OnnxScorer, to_onnx
from trademl.models.linear.estimator import LinearAlpha


def _data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = 0.5 * x[:, 0] - 0.25 * x[:, 1] + 0.1 + 0.01 * rng.normal(size=n)
    return x, y


def test_ridge_is_the_closed_form_of_the_documented_objective():
    x, y = _data()
    w = np.linspace(1.0, 2.0, len(y))
    m = LinearAlpha(alpha=0.3).fit(x, y, sample_weight=w)
    # (1/2Σw)Σw(y − xβ − b)² + ½α‖β‖²: normal equations on weighted-centered data
    p = w / w.sum()
    xc, yc = x - p @ x, y - p @ y
    beta = np.linalg.solve(xc.T @ (xc * p[:, None]) + 0.3 * np.eye(4), xc.T @ (yc * p))
    assert m.coef_ == pytest.approx(beta, rel=1e-10)
    assert m.intercept_ == pytest.approx(p @ y - (p @ x) @ beta, rel=1e-10)
    # no penalty: ordinary least squares recovers the generating coefficients
    ols = LinearAlpha(alpha=0.0).fit(x, y)
    assert ols.coef_ == pytest.approx([0.5, -0.25, 0.0, 0.0], abs=2e-3)


def test_elastic_net_zeroes_the_irrelevant_features():
    x, y = _data()
    m = LinearAlpha(alpha=0.05, l1_ratio=1.0).fit(x, y)
    assert m.coef_[2] == 0.0 and m.coef_[3] == 0.0 and m.coef_[0] > 0.3


def test_missing_values_score_as_the_mean_and_outliers_are_clipped():
    x, y = _data()
    m = LinearAlpha(alpha=0.0, clip=3.0).fit(x, y)
    row = np.array([[np.nan, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    assert m.predict(row) == pytest.approx([m.intercept_, m.intercept_ + 3.0 * m.coef_[0]])


def test_onnx_and_native_round_trips_score_like_predict():
    x, y = _data()
    m = make_estimator("linear", {"alpha": 0.1}).fit(x, y)
    probe = np.vstack([x[:50], [[np.nan, 9.0, -9.0, 0.0]]])
    onnx = OnnxScorer(to_onnx(m, 4))
    assert onnx.predict(probe) == pytest.approx(m.predict(probe), abs=1e-5)  # float32 graph
    again = LinearAlpha.from_native(m.native_bytes())
    assert again.predict(probe).tolist() == m.predict(probe).tolist()
    with pytest.raises(ValueError, match="alpha"):
        LinearAlpha(alpha=-1.0).fit(x, y)
