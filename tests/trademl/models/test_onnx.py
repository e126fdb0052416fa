"""ONNX export: parity with native predictions (NaN included), the scorer's contract, and
scoring in a process where lightgbm and catboost cannot be imported."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from tests.trademl.models.synthetic import N_FEATURES, planted_binary, planted_regression
from trademl.models.equities import CatBoostAlpha, LGBMAlpha, OnnxScorer, to_onnx
from trademl.models.equities.estimators import NotFittedError

REPO = Path(__file__).resolve().parents[3]
PARITY_ATOL = 1e-5
VARIANTS: dict[str, tuple[Callable[[], Any], bool]] = {  # name → (factory, binary target)
    "lgbm": (lambda: LGBMAlpha(n_estimators=150, n_jobs=1), False),
    "lgbm_binary": (lambda: LGBMAlpha(objective="binary", n_estimators=150, n_jobs=1), True),
    "catboost": (lambda: CatBoostAlpha(iterations=150, thread_count=1), False),
    "catboost_logloss": (
        lambda: CatBoostAlpha(loss="Logloss", iterations=150, thread_count=1),
        True,
    ),
}


def _data(binary: bool, n: int, seed: int, nan_frac: float) -> tuple[np.ndarray, np.ndarray]:
    make = planted_binary if binary else planted_regression
    return make(n, seed, nan_frac=nan_frac)


@pytest.fixture(scope="module")
def scoring_rows() -> np.ndarray:
    """Held-out rows, 15% NaN cells (most rows have at least one), plus an all-NaN row."""
    X, _ = planted_regression(3000, seed=21, nan_frac=0.15)
    X[0] = np.nan
    return X


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[Any, bytes]]:
    """Each variant trained with 10% NaN cells, and its ONNX bytes."""
    out = {}
    for name, (factory, binary) in VARIANTS.items():
        X, y = _data(binary, 3000, seed=20, nan_frac=0.10)
        est = factory().fit(X, y)
        out[name] = (est, to_onnx(est, N_FEATURES))
    return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_onnx_matches_native_with_nan_inputs(
    name: str, exported: dict[str, tuple[Any, bytes]], scoring_rows: np.ndarray
) -> None:
    est, blob = exported[name]
    scorer = OnnxScorer(blob)
    onnx_pred, native = scorer.predict(scoring_rows), est.predict(scoring_rows)
    assert np.isnan(scoring_rows).any(axis=1).mean() > 0.5
    assert onnx_pred.shape == native.shape == (len(scoring_rows),)
    assert onnx_pred.dtype == np.float64
    assert np.std(native) > 1e-3  # a model that predicts a constant would prove nothing
    np.testing.assert_allclose(onnx_pred, native, rtol=0, atol=PARITY_ATOL)
    assert scorer.is_classifier == est.is_classifier
    if est.is_classifier:
        assert np.all((onnx_pred >= 0) & (onnx_pred <= 1))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_onnx_matches_native_when_nan_unseen_in_training(
    name: str, scoring_rows: np.ndarray
) -> None:
    """Without NaN at fit time LightGBM scores NaN as 0.0; the ONNX graph must do the same."""
    factory, binary = VARIANTS[name]
    X, y = _data(binary, 3000, seed=22, nan_frac=0.0)
    est = factory().fit(X, y)
    onnx_pred = OnnxScorer(to_onnx(est, N_FEATURES)).predict(scoring_rows)
    np.testing.assert_allclose(onnx_pred, est.predict(scoring_rows), rtol=0, atol=PARITY_ATOL)


@pytest.mark.parametrize("cls", [LGBMAlpha, CatBoostAlpha])
def test_onnx_of_early_stopped_model_uses_the_kept_trees(cls: type) -> None:
    X, y = planted_regression(3000, seed=23)
    kw = {"n_estimators": 150, "n_jobs": 1} if cls is LGBMAlpha else {"iterations": 150}
    est = cls(learning_rate=0.3, **kw).fit(
        X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]), early_stopping_rounds=10
    )
    assert est.best_iteration_ < 150
    onnx_pred = OnnxScorer(to_onnx(est, N_FEATURES)).predict(X)
    np.testing.assert_allclose(onnx_pred, est.predict(X), rtol=0, atol=PARITY_ATOL)


def test_graph_shape_opset_and_metadata(exported: dict[str, tuple[Any, bytes]]) -> None:
    lgbm = onnx.load_from_string(exported["lgbm"][1])
    assert {o.domain: o.version for o in lgbm.opset_import}[""] <= 15
    for name, (_, blob) in exported.items():
        model = onnx.load_from_string(blob)
        assert not any(n.op_type == "ZipMap" for n in model.graph.node), name
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["trademl.n_features"] == str(N_FEATURES)
        assert meta["trademl.task"] == ("classification" if "_" in name else "regression")
        scorer = OnnxScorer(blob)
        assert scorer.n_features == N_FEATURES
        assert scorer.metadata["trademl.estimator"] == name.split("_")[0]


def test_scorer_contract(exported: dict[str, tuple[Any, bytes]]) -> None:
    est, blob = exported["catboost_logloss"]
    scorer = OnnxScorer(blob)
    X = planted_regression(50, seed=24)[0]
    assert np.array_equal(scorer.predict(X), scorer.predict(X.astype(np.float32)))
    np.testing.assert_allclose(scorer.predict(X[:1]), est.predict(X[:1]), atol=PARITY_ATOL)
    with pytest.raises(ValueError, match="features"):
        scorer.predict(X[:, :3])
    with pytest.raises(ValueError, match="2-D"):
        scorer.predict(X[0])
    clone = pickle.loads(pickle.dumps(scorer))
    assert np.array_equal(clone.predict(X), scorer.predict(X))


def test_to_onnx_validates_its_input(exported: dict[str, tuple[Any, bytes]]) -> None:
    with pytest.raises(ValueError, match="n_features"):
        to_onnx(exported["lgbm"][0], N_FEATURES + 1)
    with pytest.raises(NotFittedError):
        to_onnx(LGBMAlpha(), N_FEATURES)
    with pytest.raises(TypeError):
        to_onnx(object(), N_FEATURES)  # type: ignore[arg-type]


def test_scorer_runs_without_lightgbm_or_catboost(
    exported: dict[str, tuple[Any, bytes]], scoring_rows: np.ndarray, tmp_path: Path
) -> None:
    """A fresh interpreter with both engines blocked loads and scores every exported model."""
    X = scoring_rows[:200]
    np.save(tmp_path / "X.npy", X)
    for name, (est, blob) in exported.items():
        (tmp_path / f"{name}.onnx").write_bytes(blob)
        np.save(tmp_path / f"{name}.npy", est.predict(X))
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["lightgbm"] = None
        sys.modules["catboost"] = None
        from pathlib import Path
        import numpy as np
        from trademl.models.equities import OnnxScorer
        d = Path({str(tmp_path)!r})
        X = np.load(d / "X.npy")
        for name in {sorted(exported)!r}:
            pred = OnnxScorer((d / f"{{name}}.onnx").read_bytes()).predict(X)
            assert np.abs(pred - np.load(d / f"{{name}}.npy")).max() < {PARITY_ATOL}, name
        assert "onnxmltools" not in sys.modules
        print("scored", len(X))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "scored 200"
