"""CPCV training of the cross-sectional alpha: fit inside folds, Optuna over a grid, governance.

Everything fit on data (scalers, model, hyperparameters) is fit on training folds only
(honesty rule 5); the number of configurations tried is kept so DSR and PBO can deflate.
Hyperparameters are chosen on CPCV results, so the gate does not read the chosen trial's own
test folds: for each split, the configuration is picked by its out-of-fold rank IC on the
OTHER groups, and that pick's predictions for the split's test groups form the reported
out-of-sample paths (`nested_selection`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from trademl.features.store import FeatureStore, FoldMatrix
from trademl.models.equities.dataset import AlphaDataset
from trademl.models.equities.estimators import LGBMAlpha, make_estimator
from trademl.models.equities.weights import time_decay_weights
from trademl.validation.cpcv import CombinatorialPurgedCV
from trademl.validation.metrics import (
    brier_score,
    ic_by_session,
    ic_summary,
    reliability_bins,
    sharpe,
)
from trademl.validation.paths import path_metrics as _path_metrics
from trademl.validation.paths import selection_stats

if TYPE_CHECKING:
    import optuna

LGBM_GRID: dict[str, list[Any]] = {
    "num_leaves": [31, 63, 127],
    "max_depth": [-1, 7, 11],
    "learning_rate": [0.01, 0.05, 0.1],
    "min_data_in_leaf": [50, 200],
    "colsample": [0.6, 0.9],
    "subsample": [0.6, 0.9],
    "l1": [0.0, 10.0],
    "l2": [0.0, 10.0],
}
CATBOOST_GRID: dict[str, list[Any]] = {
    "depth": [4, 6, 8],
    "learning_rate": [0.01, 0.05, 0.1],
    "l2_leaf_reg": [1.0, 3.0, 10.0],
    "rsm": [0.6, 0.9],
    "subsample": [0.6, 0.9],
}
GRIDS = {"lgbm": LGBM_GRID, "catboost": CATBOOST_GRID}


def grid_for(kind: str) -> dict[str, list[Any]]:
    """The default hyperparameter grid of an estimator kind."""
    if kind == "linear":
        from trademl.models.linear.estimator import LINEAR_GRID

        return LINEAR_GRID
    return GRIDS[kind]


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions per backtest path and where the time went.

    `fit_seconds` is the sum of the raw model fits; the rest of `total_seconds` is
    splitting, purging, scaling, predicting and path bookkeeping.
    """

    oof: np.ndarray  # [n_paths, n_samples]
    fit_seconds: float
    total_seconds: float
    split_preds: tuple[np.ndarray, ...] = ()  # per split, its test rows' predictions
    split_tests: tuple[np.ndarray, ...] = ()  # per split, its test row indices

    @property
    def mean_prediction(self) -> np.ndarray:
        return self.oof.mean(axis=0)


def xs_rank_target(y: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Per-session ranks of the label scaled to [-0.5, 0.5]: what a rank-IC objective rewards.

    Raw k-session returns are dominated by high-volatility names and fat tails; ranking
    within each session uses only that session's labels, so it adds no look-ahead.
    """
    frame = pl.DataFrame({"s": session, "y": y})
    ranked = frame.select(
        (pl.col("y").rank("average").over("s") - 1) / (pl.len().over("s") - 1).clip(1) - 0.5
    )
    return ranked.to_series().to_numpy().astype(np.float64)


def training_target(ds: AlphaDataset, objective: str = "regression") -> np.ndarray:
    """What the model fits: per-session label ranks, or the class label as 0/1."""
    if objective == "classification":
        return ds.y_class
    return xs_rank_target(ds.y, ds.session)


def cross_validate(
    ds: AlphaDataset,
    cv: CombinatorialPurgedCV,
    make_model: Callable[[], Any],
    *,
    half_life_months: float | None = None,
    objective: str = "regression",
    n_jobs: int = 2,
) -> CVResult:
    """CPCV: per split, fit the FeatureStore and the model on the (purged) training rows only.

    The feature matrix is read once into a `FoldMatrix` (scaling on `n_jobs` threads; the
    model's threads are its own parameter); each split's scaled training and test rows go
    into two buffers reused across splits (a model lives only within its split). LightGBM
    test folds are scored by `LGBMExactScorer`, which equals `Booster.predict` bit for bit
    (checked on a sample of rows; native predict otherwise).
    """
    t0 = time.perf_counter()
    fit_s = 0.0
    preds: list[np.ndarray] = []
    y = training_target(ds, objective)
    names = ds.feature_names
    data = FoldMatrix.from_frame(ds.frame, names, n_threads=n_jobs)
    dates = ds.dates
    buffers = {"train": np.empty((0, len(names))), "test": np.empty((0, len(names)))}

    def scaled(store: FeatureStore, rows: np.ndarray, slot: str) -> np.ndarray:
        if buffers[slot].shape[0] < rows.size:
            buffers[slot] = np.empty((rows.size, len(names)))
        return data.transform(store, rows, out=buffers[slot][: rows.size])

    tests: list[np.ndarray] = []
    for train, test in cv.split(ds.session, ds.t1):
        tests.append(test)
        store = data.fit(train)
        w = time_decay_weights(dates[train], half_life_months=half_life_months)
        x_train = scaled(store, train, "train")
        f0 = time.perf_counter()
        model = make_model().fit(x_train, y[train], sample_weight=w)
        fit_s += time.perf_counter() - f0
        preds.append(_predict_fold(model, scaled(store, test, "test")))
    oof = cv.assemble_paths(ds.session, ds.t1, preds)
    return CVResult(
        oof=oof,
        fit_seconds=fit_s,
        total_seconds=time.perf_counter() - t0,
        split_preds=tuple(preds),
        split_tests=tuple(tests),
    )


def _predict_fold(model: Any, x: np.ndarray, n_check: int = 256) -> np.ndarray:
    """`model.predict(x)` as float64; LightGBM through `LGBMExactScorer` when it agrees exactly."""
    if isinstance(model, LGBMAlpha) and x.shape[0] > n_check:
        from trademl.models.equities.onnx_export import LGBMExactScorer

        try:
            scorer = LGBMExactScorer(
                model.native_bytes().decode("utf-8"), model.n_features_in_, n_threads=model.n_jobs
            )
        except ValueError:  # a model the converter does not cover (e.g. categorical splits)
            scorer = None
        sample = np.linspace(0, x.shape[0] - 1, n_check).astype(np.intp)
        if scorer is not None and np.array_equal(
            scorer.predict(x[sample]), model.predict(x[sample])
        ):
            return scorer.predict(x)
    return np.asarray(model.predict(x), dtype=np.float64)


def path_metrics(
    ds: AlphaDataset, oof: np.ndarray, *, horizon: int, spread_bps: float
) -> dict[str, Any]:
    """`trademl.validation.paths.path_metrics` on the dataset's labels and sessions."""
    return _path_metrics(ds.y, ds.session, oof, horizon=horizon, spread_bps=spread_bps)


def nested_selection(
    trial_session_ic: np.ndarray, split_test_sessions: list[np.ndarray]
) -> np.ndarray:
    """Per split, the trial with the best mean rank IC on the sessions OUTSIDE its test span.

    Parameters
    ----------
    trial_session_ic : [n_trials, n_sessions] per-session out-of-fold rank IC of each trial
        (NaN where a session has none).
    split_test_sessions : per split, the session codes (column indices) of its test rows.

    Returns the chosen trial per split (ties → the earlier trial; all-NaN → trial 0). The
    test span's own outcomes never enter its choice, so its predictions stay out of sample
    for the selection too.
    """
    ics = np.asarray(trial_session_ic, dtype=float)
    choice = np.zeros(len(split_test_sessions), dtype=np.intp)
    for j, test in enumerate(split_test_sessions):
        keep = np.ones(ics.shape[1], dtype=bool)
        keep[np.asarray(test, dtype=np.intp)] = False
        vals = np.where(keep & np.isfinite(ics), ics, 0.0).sum(axis=1)
        counts = (keep & np.isfinite(ics)).sum(axis=1)
        score = np.where(counts > 0, vals / np.maximum(counts, 1), -np.inf)
        choice[j] = int(np.argmax(score))
    return choice


@dataclass
class HPOResult:
    """Every configuration tried (for DSR/PBO), the best one by mean CPCV rank IC (the model
    to ship), and the nested out-of-sample paths the gate reads (`nested_cv`)."""

    kind: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float = float("nan")
    best_cv: CVResult | None = None
    trial_returns: list[np.ndarray] = field(default_factory=list)
    trial_session_ic: list[np.ndarray] = field(default_factory=list)
    trial_split_preds: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    nested_cv: CVResult | None = None
    split_choice: np.ndarray | None = None

    @property
    def n_trials(self) -> int:
        return len(self.trials)


def run_hpo(
    ds: AlphaDataset,
    cv: CombinatorialPurgedCV,
    *,
    kind: str = "lgbm",
    n_trials: int = 10,
    base_params: dict[str, Any] | None = None,
    grid: dict[str, list[Any]] | None = None,
    half_life_months: float | None = None,
    horizon: int = 5,
    spread_bps: float = 5.0,
    seed: int = 7,
    objective: str = "regression",
    progress: Callable[[int, float], None] | None = None,
) -> HPOResult:
    """Optuna over the grid, objective = mean CPCV rank IC over paths: TPE (seeded), or every
    grid point once when `n_trials` covers the whole grid (a small grid, e.g. the linear
    sleeve's penalties)."""
    grid = grid if grid is not None else grid_for(kind)
    out = HPOResult(kind=kind)
    base = dict(base_params or {})
    _, codes = np.unique(ds.session, return_inverse=True)
    n_sessions = int(codes.max()) + 1 if codes.size else 0

    def trial_value(trial: optuna.Trial) -> float:
        params = {**base, **{k: trial.suggest_categorical(k, v) for k, v in grid.items()}}
        res = cross_validate(
            ds,
            cv,
            lambda: make_estimator(kind, params),
            half_life_months=half_life_months,
            objective=objective,
        )
        m = path_metrics(ds, res.oof, horizon=horizon, spread_bps=spread_bps)
        value = m["rank_ic"]
        out.trials.append({"number": trial.number, "params": params, "rank_ic": value})
        per = ic_by_session(res.mean_prediction, ds.y, codes)
        session_ic = np.full(n_sessions, np.nan)
        session_ic[per.get_column("session").to_numpy()] = per.get_column("rank_ic").to_numpy()
        out.trial_session_ic.append(session_ic)
        out.trial_split_preds.append(res.split_preds)
        out.trial_returns.append(np.mean(np.vstack(m["returns_by_path"]), axis=0))
        if not math.isfinite(out.best_value) or value > out.best_value:
            out.best_value, out.best_params, out.best_cv = value, params, res
        if progress:
            progress(trial.number, value)
        return value if math.isfinite(value) else -1.0

    import optuna  # on first use: loading the code location never pays for it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_grid = math.prod(len(v) for v in grid.values())
    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.GridSampler(grid, seed=seed)
        if n_trials >= n_grid
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(trial_value, n_trials=min(n_trials, n_grid))
    assert out.best_cv is not None
    tests = out.best_cv.split_tests
    out.split_choice = nested_selection(np.vstack(out.trial_session_ic), [codes[t] for t in tests])
    picked = [out.trial_split_preds[k][j] for j, k in enumerate(out.split_choice)]
    out.nested_cv = CVResult(
        oof=cv.assemble_paths(ds.session, ds.t1, picked),
        fit_seconds=0.0,
        total_seconds=0.0,
        split_tests=tests,
    )
    out.trial_split_preds = []  # the per-split predictions are no longer needed
    return out


def governance(
    ds: AlphaDataset,
    hpo: HPOResult,
    *,
    horizon: int,
    spread_bps: float,
    baseline_feature: str = "mom_12_1",
    objective: str = "regression",
) -> dict[str, Any]:
    """Metrics the promotion gate reads; NaN where the data cannot support a number."""
    assert hpo.nested_cv is not None
    m = path_metrics(ds, hpo.nested_cv.oof, horizon=horizon, spread_bps=spread_bps)
    # the median path's returns are the representative backtest for PSR/DSR
    order = np.argsort(m["sharpe_by_path"])
    r = m["returns_by_path"][order[len(order) // 2]]
    ppy = 252 / horizon
    sr = sharpe(r, periods_per_year=1.0)
    selected = selection_stats(r, hpo.trial_returns, hpo.n_trials)
    base = (
        ds.frame.get_column(baseline_feature).to_numpy()
        if baseline_feature in ds.frame.columns
        else None
    )
    base_ic = (
        ic_summary(ic_by_session(np.nan_to_num(base, nan=0.0), ds.y, ds.session))["rank_ic_mean"]
        if base is not None
        else float("nan")
    )
    calibration: dict[str, Any] = {}
    if objective == "classification":
        prob, outcome = hpo.nested_cv.mean_prediction, ds.y_class
        calibration = {
            "brier": brier_score(prob, outcome),
            "reliability": reliability_bins(prob, outcome, n_bins=10),
        }
    return {
        **calibration,
        "oos_rank_ic": m["rank_ic"],
        "rank_ic_by_path": m["rank_ic_by_path"],
        "path_sharpe_median": m["path_sharpe_median"],
        "sharpe_by_path": m["sharpe_by_path"],
        "max_drawdown": m["max_drawdown"],
        "sharpe_annual": sr * math.sqrt(ppy),
        "dsr": selected["dsr"],
        "pbo": selected["pbo"],
        "n_trials": hpo.n_trials,
        "hpo_best_rank_ic": hpo.best_value,  # the chosen trial's own CPCV IC (selection-biased)
        "baseline_rank_ic": base_ic,
        "baseline_feature": baseline_feature,
    }
