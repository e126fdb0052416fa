"""Scikit-learn-shaped GBDT alpha estimators on LightGBM and CatBoost.

Both take keyword-only hyperparameters, `fit` returns self, fitted attributes end in `_`,
and a fixed `seed` gives bit-identical models. `native_bytes()`/`from_native()` round-trip
the engine's own format (LightGBM model text, CatBoost `cbm`), so a model is stored without
pickles or the sklearn wrappers. Regression objectives predict the value; the binary
variants (`LGBMAlpha(objective="binary")`, `CatBoostAlpha(loss="Logloss")`) predict
P(y = 1), e.g. for top/bottom-k classification on triple-barrier labels mapped to {0, 1}.

lightgbm and catboost are imported on first use, never at module import.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

if TYPE_CHECKING:
    import catboost
    import lightgbm as lgb

__all__ = ["AlphaEstimator", "CatBoostAlpha", "LGBMAlpha", "NotFittedError", "make_estimator"]

EvalSet = tuple[Any, Any]
"""A single validation set `(X_val, y_val)`; early stopping monitors it."""

_LGB_CLASSIFICATION_OBJECTIVES = frozenset({"binary"})
_CB_CLASSIFICATION_LOSSES = frozenset({"Logloss"})


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needing a fitted model is called before `fit`."""


class _ParamsMixin:
    """`get_params`/`set_params`/`repr` from the keyword-only `__init__` (sklearn `clone` works)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters by name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters; unknown names raise ValueError."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")


def _as_matrix(X: Any, n_features: int | None = None) -> np.ndarray:
    """2-D float array (float32 kept, anything else as float64); polars/pandas via to_numpy."""
    if not isinstance(X, np.ndarray) and hasattr(X, "to_numpy"):
        X = X.to_numpy()
    arr = np.asarray(X)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"X has {arr.shape[1]} features, the model expects {n_features}")
    return np.ascontiguousarray(arr)


def _as_target(y: Any, n_rows: int, *, binary: bool) -> np.ndarray:
    """1-D finite target of length `n_rows`; {0, 1} integers for the binary variants."""
    if not isinstance(y, np.ndarray) and hasattr(y, "to_numpy"):
        y = y.to_numpy()
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n_rows:
        raise ValueError(f"y has {arr.shape[0]} rows, X has {n_rows}")
    if not np.isfinite(arr).all():
        raise ValueError("y contains NaN or inf")
    if binary:
        if not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError("binary targets must be 0/1 (map e.g. triple-barrier +1 to 1)")
        return arr.astype(np.int64)
    return arr


def _as_weights(sample_weight: Any, n_rows: int) -> np.ndarray | None:
    """Validated non-negative finite weights, or None."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_rows:
        raise ValueError(f"sample_weight has {w.shape[0]} rows, X has {n_rows}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return w


def _check_eval(
    eval_set: EvalSet | None, early_stopping_rounds: int | None, n_features: int, binary: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    if early_stopping_rounds is not None:
        if eval_set is None:
            raise ValueError("early_stopping_rounds needs an eval_set")
        if early_stopping_rounds < 1:
            raise ValueError("early_stopping_rounds must be >= 1")
    if eval_set is None:
        return None
    if not (isinstance(eval_set, tuple) and len(eval_set) == 2):
        raise ValueError("eval_set must be a single (X_val, y_val) tuple")
    X_val = _as_matrix(eval_set[0], n_features)
    return X_val, _as_target(eval_set[1], X_val.shape[0], binary=binary)


class LGBMAlpha(_ParamsMixin):
    """LightGBM on `lightgbm.train` with a raw `Booster` (`booster_`), deterministic by seed.

    `colsample`/`subsample` map to feature/bagging fraction (bagging every iteration when
    subsample < 1), `l1`/`l2` to the leaf penalties, `n_jobs` to `num_threads`.
    `objective="binary"` makes it a classifier whose `predict` returns P(y = 1).
    """

    def __init__(
        self,
        *,
        objective: str = "regression",
        num_leaves: int = 31,
        max_depth: int = -1,
        learning_rate: float = 0.05,
        n_estimators: int = 300,
        min_data_in_leaf: int = 50,
        colsample: float = 0.9,
        subsample: float = 0.9,
        l1: float = 0.0,
        l2: float = 0.0,
        seed: int = 7,
        n_jobs: int = 2,
    ) -> None:
        self.objective = objective
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.min_data_in_leaf = min_data_in_leaf
        self.colsample = colsample
        self.subsample = subsample
        self.l1 = l1
        self.l2 = l2
        self.seed = seed
        self.n_jobs = n_jobs

    @property
    def is_classifier(self) -> bool:
        """True for the binary objective (predict returns probabilities)."""
        return self.objective in _LGB_CLASSIFICATION_OBJECTIVES

    def lgb_params(self) -> dict[str, Any]:
        """The `lightgbm.train` parameter dict these hyperparameters map to."""
        return {
            "objective": self.objective,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.colsample,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "lambda_l1": self.l1,
            "lambda_l2": self.l2,
            "seed": self.seed,
            "num_threads": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        eval_set: EvalSet | None = None,
        early_stopping_rounds: int | None = None,
    ) -> Self:
        """Train `n_estimators` rounds (fewer with early stopping on `eval_set`)."""
        import lightgbm as lgb

        X = _as_matrix(X)
        y = _as_target(y, X.shape[0], binary=self.is_classifier)
        w = _as_weights(sample_weight, X.shape[0])
        val = _check_eval(eval_set, early_stopping_rounds, X.shape[1], self.is_classifier)
        params = self.lgb_params()
        train = lgb.Dataset(X, y, weight=w, params=params)
        valid_sets, callbacks, evals_result = [], [], {}
        if val is not None:
            valid_sets.append(lgb.Dataset(val[0], val[1], reference=train, params=params))
            callbacks.append(lgb.record_evaluation(evals_result))
        if early_stopping_rounds is not None:
            callbacks.append(
                lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
            )
        booster = lgb.train(
            params,
            train,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            valid_names=["valid"] if valid_sets else None,
            callbacks=callbacks,
        )
        best = booster.best_iteration if early_stopping_rounds is not None else 0
        # Re-load from the model text: booster_ then holds exactly the trees that predict
        # (truncated to the best iteration) and canonical params, as from_native() would.
        text = booster.model_to_string(num_iteration=best if best > 0 else None)
        self._set_booster(lgb.Booster(model_str=text))
        self.evals_result_ = evals_result
        return self

    def _set_booster(self, booster: lgb.Booster) -> None:
        self.booster_ = booster
        self.n_features_in_ = booster.num_feature()
        self.best_iteration_ = booster.current_iteration()
        gain = booster.feature_importance(importance_type="gain")
        self.feature_importance_ = np.asarray(gain, dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted value (regression) or P(y = 1) (binary), as float64 [n]."""
        self._check_fitted()
        X = _as_matrix(X, self.n_features_in_)
        out = self.booster_.predict(X, num_threads=self.n_jobs)
        return np.asarray(out, dtype=np.float64)

    def native_bytes(self) -> bytes:
        """The booster as LightGBM model text (UTF-8)."""
        self._check_fitted()
        return self.booster_.model_to_string().encode("utf-8")

    @classmethod
    def from_native(cls, data: bytes) -> LGBMAlpha:
        """A fitted estimator from `native_bytes()`; hyperparameters restored from the text."""
        import lightgbm as lgb

        booster = lgb.Booster(model_str=data.decode("utf-8"))
        p = booster.params
        est = cls(
            objective=str(p.get("objective", "regression")),
            num_leaves=int(p.get("num_leaves", 31)),
            max_depth=int(p.get("max_depth", -1)),
            learning_rate=float(p.get("learning_rate", 0.05)),
            n_estimators=booster.current_iteration(),
            min_data_in_leaf=int(p.get("min_data_in_leaf", 50)),
            colsample=float(p.get("feature_fraction", 0.9)),
            subsample=float(p.get("bagging_fraction", 0.9)),
            l1=float(p.get("lambda_l1", 0.0)),
            l2=float(p.get("lambda_l2", 0.0)),
            seed=int(p.get("seed", 7)),
            n_jobs=int(p.get("num_threads", 2)),
        )
        est._set_booster(booster)
        est.evals_result_ = {}
        return est


def _f32_param(value: Any, default: float) -> float:
    """A hyperparameter CatBoost stored as float32, rounded back to 7 significant digits."""
    return default if value is None else float(f"{float(value):.7g}")


class CatBoostAlpha(_ParamsMixin):
    """CatBoost (`CatBoostRegressor`, or `CatBoostClassifier` for loss="Logloss") in `model_`.

    Bernoulli row subsampling when subsample < 1 (no bootstrap otherwise); `rsm` is the
    per-split feature fraction. The Logloss variant's `predict` returns P(y = 1).
    """

    def __init__(
        self,
        *,
        depth: int = 6,
        learning_rate: float = 0.05,
        iterations: int = 300,
        l2_leaf_reg: float = 3.0,
        rsm: float = 0.9,
        subsample: float = 0.9,
        seed: int = 7,
        thread_count: int = 2,
        loss: str = "RMSE",
    ) -> None:
        self.depth = depth
        self.learning_rate = learning_rate
        self.iterations = iterations
        self.l2_leaf_reg = l2_leaf_reg
        self.rsm = rsm
        self.subsample = subsample
        self.seed = seed
        self.thread_count = thread_count
        self.loss = loss

    @property
    def is_classifier(self) -> bool:
        """True for the Logloss loss (predict returns probabilities)."""
        return self.loss.split(":")[0] in _CB_CLASSIFICATION_LOSSES

    def catboost_params(self) -> dict[str, Any]:
        """The CatBoost constructor keywords these hyperparameters map to."""
        params: dict[str, Any] = {
            "depth": self.depth,
            "learning_rate": self.learning_rate,
            "iterations": self.iterations,
            "l2_leaf_reg": self.l2_leaf_reg,
            "rsm": self.rsm,
            "random_seed": self.seed,
            "thread_count": self.thread_count,
            "loss_function": self.loss,
            "verbose": False,
            "allow_writing_files": False,
        }
        if self.subsample < 1.0:
            params.update(bootstrap_type="Bernoulli", subsample=self.subsample)
        else:
            params["bootstrap_type"] = "No"
        return params

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        eval_set: EvalSet | None = None,
        early_stopping_rounds: int | None = None,
    ) -> Self:
        """Train `iterations` trees (the best prefix on `eval_set` with early stopping)."""
        import catboost

        X = _as_matrix(X)
        y = _as_target(y, X.shape[0], binary=self.is_classifier)
        w = _as_weights(sample_weight, X.shape[0])
        val = _check_eval(eval_set, early_stopping_rounds, X.shape[1], self.is_classifier)
        cls = catboost.CatBoostClassifier if self.is_classifier else catboost.CatBoostRegressor
        model = cls(**self.catboost_params())
        model.fit(
            X,
            y,
            sample_weight=w,
            eval_set=val,
            early_stopping_rounds=early_stopping_rounds,
            use_best_model=early_stopping_rounds is not None,
        )
        self._set_model(model)
        return self

    def _set_model(self, model: catboost.CatBoost) -> None:
        self.model_ = model
        self.n_features_in_ = len(model.feature_names_)
        self.best_iteration_ = int(model.tree_count_)
        self.feature_importance_ = np.asarray(model.get_feature_importance(), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted value (regression) or P(y = 1) (Logloss), as float64 [n]."""
        self._check_fitted()
        X = _as_matrix(X, self.n_features_in_)
        if self.is_classifier:
            out = self.model_.predict_proba(X, thread_count=self.thread_count)[:, 1]
        else:
            out = self.model_.predict(X, thread_count=self.thread_count)
        return np.asarray(out, dtype=np.float64)

    def native_bytes(self) -> bytes:
        """The model in CatBoost's binary `cbm` format."""
        self._check_fitted()
        with tempfile.TemporaryDirectory(prefix="trademl-cbm-") as tmp:
            path = Path(tmp) / "model.cbm"
            self.model_.save_model(str(path), format="cbm")
            return path.read_bytes()

    @classmethod
    def from_native(cls, data: bytes) -> CatBoostAlpha:
        """A fitted estimator from `native_bytes()`; hyperparameters restored from the model."""
        import catboost

        generic = catboost.CatBoost().load_model(blob=data)
        p = generic.get_all_params()
        est = cls(
            depth=int(p.get("depth", 6)),
            learning_rate=_f32_param(p.get("learning_rate"), 0.05),
            iterations=int(generic.tree_count_),
            l2_leaf_reg=_f32_param(p.get("l2_leaf_reg"), 3.0),
            rsm=_f32_param(p.get("rsm"), 1.0),
            subsample=_f32_param(p.get("subsample"), 1.0),
            seed=int(p.get("random_seed", 7)),
            loss=str(p.get("loss_function", "RMSE")),
        )
        model_cls = catboost.CatBoostClassifier if est.is_classifier else catboost.CatBoostRegressor
        model = model_cls()
        model.load_model(blob=data)
        est._set_model(model)
        return est


AlphaEstimator = LGBMAlpha | CatBoostAlpha


def make_estimator(
    kind: Literal["lgbm", "catboost", "linear"], params: dict[str, Any] | None = None
) -> Any:
    """An unfitted estimator of `kind` with `params` (unknown names raise TypeError)."""
    if kind == "lgbm":
        return LGBMAlpha(**(params or {}))
    if kind == "catboost":
        return CatBoostAlpha(**(params or {}))
    if kind == "linear":
        from trademl.models.linear.estimator import LinearAlpha

        return LinearAlpha(**(params or {}))
    raise ValueError(f"unknown estimator kind {kind!r}; expected 'lgbm', 'catboost' or 'linear'")
