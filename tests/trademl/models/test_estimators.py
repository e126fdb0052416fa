"""GBDT alpha estimators: planted signal, no skill on noise, determinism, native round trip,
binary variants, sample weights, early stopping and the scikit-learn-shaped API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone

from tests.trademl.models.synthetic import (
    N_FEATURES,
    auc,
    corr,
    planted_binary,
    planted_regression,
)
from trademl.models.equities import CatBoostAlpha, LGBMAlpha, make_estimator
from trademl.models.equities.estimators import NotFittedError

# Small, single-threaded fits keep the module fast on a busy 2-core box.
FACTORIES: dict[str, Callable[..., Any]] = {
    "lgbm": lambda **kw: LGBMAlpha(n_estimators=150, n_jobs=1, **kw),
    "lgbm_binary": lambda **kw: LGBMAlpha(objective="binary", n_estimators=150, n_jobs=1, **kw),
    "catboost": lambda **kw: CatBoostAlpha(iterations=150, thread_count=1, **kw),
    "catboost_logloss": lambda **kw: CatBoostAlpha(
        loss="Logloss", iterations=150, thread_count=1, **kw
    ),
}
REGRESSORS = ["lgbm", "catboost"]
CLASSIFIERS = ["lgbm_binary", "catboost_logloss"]
N_TRAIN = 3000


@pytest.fixture(scope="module")
def reg_data() -> tuple[np.ndarray, ...]:
    X, y = planted_regression(5000, seed=1)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def bin_data() -> tuple[np.ndarray, ...]:
    X, y = planted_binary(5000, seed=2)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def fitted(reg_data: tuple[np.ndarray, ...], bin_data: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """One fitted model per variant, shared by the tests of this module."""
    out = {}
    for name, factory in FACTORIES.items():
        X, y = (bin_data if name in CLASSIFIERS else reg_data)[:2]
        out[name] = factory().fit(X, y)
    return out


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_recovers_planted_signal(
    name: str, fitted: dict[str, Any], reg_data: tuple[np.ndarray, ...]
) -> None:
    est = fitted[name]
    _, _, X_te, y_te = reg_data
    pred = est.predict(X_te)
    assert pred.shape == (X_te.shape[0],) and pred.dtype == np.float64
    assert corr(pred, y_te) > 0.5
    assert est.n_features_in_ == N_FEATURES
    assert est.feature_importance_.shape == (N_FEATURES,)
    assert set(np.argsort(est.feature_importance_)[-2:]) == {0, 1}  # the planted features


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_has_no_skill_on_pure_noise(name: str) -> None:
    X, y = planted_regression(3000 + 6000, seed=3, signal=False)
    est = FACTORIES[name]().fit(X[:3000], y[:3000])
    rho = corr(est.predict(X[3000:]), y[3000:])
    assert abs(rho) < 0.1  # 6000 held-out rows: one standard error ≈ 0.013


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_returns_probabilities_with_skill(
    name: str, fitted: dict[str, Any], bin_data: tuple[np.ndarray, ...]
) -> None:
    _, _, X_te, y_te = bin_data
    proba = fitted[name].predict(X_te)
    assert proba.shape == (X_te.shape[0],)
    assert np.all((proba >= 0) & (proba <= 1))
    assert auc(y_te, proba) > 0.7
    assert corr(proba, X_te[:, 0]) > 0.3  # P(y=1) rises with the planted positive feature


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_rejects_non_binary_targets(name: str) -> None:
    X, _ = planted_binary(200, seed=4)
    with pytest.raises(ValueError, match="0/1"):
        FACTORIES[name]().fit(X, np.where(X[:, 0] > 0, 1, -1))


@pytest.mark.parametrize("kind", ["lgbm", "catboost"])
def test_same_seed_gives_identical_predictions(kind: str) -> None:
    """Default threads (2): deterministic LightGBM and seeded CatBoost are bit-identical.

    Kept tiny: every OpenMP barrier of a 2-thread LightGBM fit can cost a scheduler tick
    when the CPUs are oversubscribed, so few rounds of small trees.
    """
    X, y = planted_regression(1000, seed=5)
    small = {"n_estimators": 5, "num_leaves": 7} if kind == "lgbm" else {"iterations": 20}
    a = make_estimator(kind, {**small, "seed": 11}).fit(X, y).predict(X)
    b = make_estimator(kind, {**small, "seed": 11}).fit(X, y).predict(X)
    c = make_estimator(kind, {**small, "seed": 12}).fit(X, y).predict(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # the seed is wired through (row/feature subsampling)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_native_bytes_round_trip(
    name: str, fitted: dict[str, Any], reg_data: tuple[np.ndarray, ...]
) -> None:
    est = fitted[name]
    X_te = reg_data[2]
    blob = est.native_bytes()
    assert isinstance(blob, bytes) and len(blob) > 1000
    back = type(est).from_native(blob)
    assert np.array_equal(back.predict(X_te), est.predict(X_te))
    assert back.is_classifier == est.is_classifier
    assert np.allclose(back.feature_importance_, est.feature_importance_)
    params, restored = est.get_params(), back.get_params()
    for key in ("objective", "loss", "num_leaves", "depth", "learning_rate", "subsample", "seed"):
        if key in params:
            assert restored[key] == params[key], key


@pytest.mark.parametrize("name", REGRESSORS)
def test_sample_weight_changes_the_fit(name: str) -> None:
    """Two regimes with opposite signs on x0: the up-weighted regime decides the slope."""
    rng = np.random.default_rng(6)
    n = 3000
    X = rng.normal(size=(n, N_FEATURES))
    regime_a = np.arange(n) < n // 2
    y = np.where(regime_a, 1.0, -1.0) * X[:, 0] + 0.3 * rng.normal(size=n)
    grid = np.zeros((41, N_FEATURES))
    grid[:, 0] = np.linspace(-2, 2, 41)
    slope_a = corr(
        FACTORIES[name]().fit(X, y, sample_weight=np.where(regime_a, 1.0, 0.02)).predict(grid),
        grid[:, 0],
    )
    slope_b = corr(
        FACTORIES[name]().fit(X, y, sample_weight=np.where(regime_a, 0.02, 1.0)).predict(grid),
        grid[:, 0],
    )
    assert slope_a > 0.8 and slope_b < -0.8


@pytest.mark.parametrize("name", REGRESSORS)
def test_early_stopping_truncates_and_round_trips(name: str) -> None:
    X, y = planted_regression(3000, seed=7)
    est = FACTORIES[name](learning_rate=0.3).fit(
        X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]), early_stopping_rounds=10
    )
    assert 0 < est.best_iteration_ < 150
    back = type(est).from_native(est.native_bytes())
    assert back.best_iteration_ == est.best_iteration_
    assert np.array_equal(back.predict(X), est.predict(X))
    with pytest.raises(ValueError, match="eval_set"):
        FACTORIES[name]().fit(X, y, early_stopping_rounds=10)


def test_lgbm_parameters_map_to_lightgbm() -> None:
    p = LGBMAlpha(subsample=0.8, colsample=0.7, l1=0.1, l2=0.2, n_jobs=3).lgb_params()
    assert (p["bagging_fraction"], p["bagging_freq"], p["feature_fraction"]) == (0.8, 1, 0.7)
    assert (p["lambda_l1"], p["lambda_l2"], p["num_threads"]) == (0.1, 0.2, 3)
    assert p["deterministic"] and p["force_row_wise"] and p["verbose"] == -1
    assert LGBMAlpha(subsample=1.0).lgb_params()["bagging_freq"] == 0


def test_catboost_parameters_map_to_catboost() -> None:
    p = CatBoostAlpha(subsample=0.8, seed=3).catboost_params()
    assert (p["bootstrap_type"], p["subsample"], p["random_seed"]) == ("Bernoulli", 0.8, 3)
    assert not p["allow_writing_files"] and p["verbose"] is False and p["thread_count"] == 2
    full = CatBoostAlpha(subsample=1.0).catboost_params()
    assert full["bootstrap_type"] == "No" and "subsample" not in full


def test_make_estimator_dispatches_and_validates() -> None:
    est = make_estimator("lgbm", {"num_leaves": 7, "objective": "binary"})
    assert isinstance(est, LGBMAlpha) and est.num_leaves == 7 and est.is_classifier
    cb = make_estimator("catboost", {"depth": 4})
    assert isinstance(cb, CatBoostAlpha) and cb.depth == 4 and not cb.is_classifier
    assert make_estimator("catboost", {"loss": "Logloss"}).is_classifier
    with pytest.raises(ValueError, match="unknown estimator kind"):
        make_estimator("xgb", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make_estimator("lgbm", {"depth": 4})


@pytest.mark.parametrize("cls", [LGBMAlpha, CatBoostAlpha])
def test_sklearn_shape(cls: type) -> None:
    est = cls(seed=3)
    with pytest.raises(TypeError):
        cls(3)  # keyword-only
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert est.set_params(seed=4) is est and est.seed == 4
    with pytest.raises(ValueError, match="invalid parameter"):
        est.set_params(nope=1)
    assert f"{cls.__name__}(" in repr(est) and "seed=4" in repr(est)
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((2, 3)))
    assert not hasattr(est, "n_features_in_")


def test_fit_returns_self_and_checks_inputs() -> None:
    X, y = planted_regression(300, seed=8)
    est = LGBMAlpha(n_estimators=5, n_jobs=1)
    assert est.fit(X, y) is est
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :3])
    with pytest.raises(ValueError, match="rows"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="sample_weight"):
        est.fit(X, y, sample_weight=-np.ones(len(y)))


def test_polars_frame_input_matches_numpy() -> None:
    X, y = planted_regression(500, seed=9)
    frame = pl.DataFrame({f"f{i}": X[:, i] for i in range(N_FEATURES)})
    a = LGBMAlpha(n_estimators=10, n_jobs=1).fit(frame, pl.Series(y)).predict(frame)
    b = LGBMAlpha(n_estimators=10, n_jobs=1).fit(X, y).predict(X)
    assert np.array_equal(a, b)
