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


# --- LGBMExactScorer: LightGBM's own predict, bit for bit, through a float64 TreeEnsemble

LGB_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


def _awkward_rows(seed: int) -> np.ndarray:
    """Held-out rows with NaN, exact zeros, values LightGBM reads as 0.0, ±inf and ±kZero."""
    X, _ = planted_regression(2000, seed=seed, nan_frac=0.1)
    X[np.random.default_rng(seed).random(X.shape) < 0.05] = 0.0
    X[:20] = 1e-40
    X[20:40] = -1e-36
    X[40:60] = LGB_ZERO
    X[60:80] = -LGB_ZERO
    X[80:90] = np.inf
    X[90:100] = -np.inf
    X[100] = np.nan
    return X


def _with_zero_splits(X: np.ndarray) -> np.ndarray:
    """Integer-rounded copies of two columns: many exact zeros, so splits land at ±kZero."""
    X = X.copy()
    X[:, 0], X[:, 1] = np.round(X[:, 0]), np.round(2 * X[:, 1])
    return X


EXACT_VARIANTS: dict[str, tuple[dict[str, Any], bool, float]] = {  # params, binary, train NaN
    "regression_nan_seen": ({}, False, 0.1),
    "regression_nan_unseen": ({}, False, 0.0),
    "binary": ({"objective": "binary"}, True, 0.1),
    "depth_limited": ({"max_depth": 3, "num_leaves": 7}, False, 0.1),
    "constant_trees": ({"num_leaves": 2, "min_data_in_leaf": 5000}, False, 0.0),
}


@pytest.mark.parametrize("name", list(EXACT_VARIANTS))
def test_exact_scorer_equals_lightgbm_predict_bit_for_bit(name: str) -> None:
    from trademl.models.equities.onnx_export import LGBMExactScorer

    params, binary, nan_frac = EXACT_VARIANTS[name]
    X, y = _data(binary, 4000, seed=30, nan_frac=nan_frac)
    X = _with_zero_splits(X)
    est = LGBMAlpha(n_estimators=60, n_jobs=1, **params).fit(X, y)
    rows = _with_zero_splits(_awkward_rows(31))
    native = est.predict(rows)
    assert np.std(native) > 1e-3 or name == "constant_trees"
    for n_threads in (1, 3):
        scorer = LGBMExactScorer(est.native_bytes().decode(), N_FEATURES, n_threads=n_threads)
        pred = scorer.predict(rows)
        assert pred.dtype == np.float64 and pred.shape == (len(rows),)
        np.testing.assert_array_equal(pred, native)
    if name == "constant_trees":
        assert "num_leaves=1" in est.native_bytes().decode()
    assert scorer.predict(rows[:0]).shape == (0,)


def test_exact_scorer_reads_tiny_inputs_as_zero_like_lightgbm() -> None:
    """A split at -kZero sends -kZero itself right in LightGBM (it reads 0.0), left by value."""
    import lightgbm as lgb

    from trademl.models.equities.onnx_export import LGBMExactScorer

    x = np.repeat([[-1.0], [0.0], [1.0]], 200, axis=0)
    y = np.repeat([0.0, 5.0, 10.0], 200)
    params = {"min_data_in_leaf": 5, "min_data_in_bin": 1, "verbose": -1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=3)
    text = booster.model_to_string()
    assert f"{-LGB_ZERO!r}" in text or "-1.0000000180025095e-35" in text
    rows = np.array([[-LGB_ZERO], [-1e-36], [0.0], [-1.0], [np.nan]])
    native = booster.predict(rows)
    assert native[0] == native[2] != native[3]  # -kZero scores as 0.0
    np.testing.assert_array_equal(LGBMExactScorer(text, 1).predict(rows), native)


def test_tree_ensemble_graph_is_float64_opset5_and_checks() -> None:
    from trademl.models.equities.onnx_export import lgbm_tree_ensemble

    X, y = planted_regression(2000, seed=32)
    est = LGBMAlpha(n_estimators=7, num_leaves=5, n_jobs=1).fit(X, y)
    proto = lgbm_tree_ensemble(est.native_bytes().decode(), N_FEATURES)
    onnx.checker.check_model(proto)
    (node,) = proto.graph.node
    assert (node.op_type, node.domain) == ("TreeEnsemble", "ai.onnx.ml")
    assert {o.domain: o.version for o in proto.opset_import}["ai.onnx.ml"] == 5
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert len(attrs["tree_roots"]) == 7
    assert len(attrs["nodes_featureids"]) == 7 * 4  # 5 leaves: 4 splits per tree
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_exact_scorer_refuses_what_it_cannot_reproduce() -> None:
    import lightgbm as lgb

    from trademl.models.equities.onnx_export import LGBMExactScorer

    rng = np.random.default_rng(33)
    x = np.column_stack([rng.integers(0, 6, 3000), rng.normal(size=3000)]).astype(float)
    y = x[:, 0] + rng.normal(size=3000)
    base = {"verbose": -1, "seed": 1, "min_data_in_leaf": 20}
    cases = {
        "categorical": (base, {"categorical_feature": [0]}),
        "zero-as-missing": ({**base, "zero_as_missing": True}, {}),
        "multiclass": ({**base, "objective": "multiclass", "num_class": 3}, {}),
        "poisson": ({**base, "objective": "poisson"}, {}),
        "sqrt-regression": ({**base, "reg_sqrt": True}, {}),
    }
    for name, (params, data_kw) in cases.items():
        target = np.clip(np.round(y), 0, 2) if name == "multiclass" else np.abs(y)
        booster = lgb.train(params, lgb.Dataset(x, target, **data_kw), num_boost_round=3)
        with pytest.raises(ValueError):
            LGBMExactScorer(booster.model_to_string(), 2)
    with pytest.raises(ValueError, match="no trees"):
        LGBMExactScorer("tree\nversion=v4\n", 2)
