"""CPCV training on the synthetic market: finds the planted signal, and nothing in noise."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from trademl.config import FeatureConfig, LabelConfig
from trademl.data.calendar import get_calendar
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
from trademl.features import build_features, feature_names
from trademl.labels import compute_labels
from trademl.models.equities import onnx_export
from trademl.models.equities.dataset import AlphaDataset, build_dataset
from trademl.models.equities.estimators import LGBMAlpha
from trademl.models.equities.promotion import PromotionPolicy, decide
from trademl.models.equities.regimes import REGIME_FEATURE
from trademl.models.equities.train import (
    cross_validate,
    governance,
    nested_selection,
    run_hpo,
    training_target,
)
from trademl.models.equities.weights import time_decay_weights
from trademl.validation.cpcv import CombinatorialPurgedCV
from trademl.validation.metrics import ic_by_session, ic_summary

START = dt.date(2021, 1, 4)
END = dt.date(2023, 6, 30)
FAST = {"n_estimators": 80, "n_jobs": 1}  # 2 threads per xdist worker oversubscribe 2 cores
# a small grid keeps the test quick; the full grid is the default (LGBM_GRID)
GRID = {
    "num_leaves": [7, 15],
    "learning_rate": [0.05],
    "min_data_in_leaf": [200],
    "colsample": [0.6],
}


def _dataset(mode: str, ic: float, seed: int, class_label: str | None = None):
    cal = get_calendar("XNYS", dt.date(2020, 11, 1))
    market = SyntheticMarket(
        SyntheticSpec(n_symbols=80, seed=seed, start=START, alpha_mode=mode, target_ic=ic), cal
    )
    bars = market.load(end=END)
    sessions = cal.sessions_in_range(START, END)
    fcfg = FeatureConfig()
    feats = build_features(bars, sessions, cross_sectional=fcfg.cross_sectional)
    labels = compute_labels(bars, sessions, LabelConfig())
    # the default model inputs: the market-vol regime is evaluated, not fed to the model
    names = [n for n in feature_names(fcfg.cross_sectional) if n != REGIME_FEATURE]
    ds = build_dataset(
        feats,
        labels,
        label="fwd_ret_5",
        as_of=END,
        sessions=cal.sessions,
        feature_names=names,
        class_label=class_label,
    )
    return ds, market.ground_truth(END)


def _train(ds, n_trials: int = 2):
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=10)
    hpo = run_hpo(ds, cv, kind="lgbm", n_trials=n_trials, base_params=FAST, grid=GRID, seed=3)
    return hpo, governance(ds, hpo, horizon=5, spread_bps=5.0)


def test_labels_never_end_after_the_as_of_session():
    ds, _ = _dataset("planted", 0.1, seed=5)
    assert ds.t1.max() <= ds.session.max() + 6
    assert (ds.frame.get_column("t1") <= END).all()


def test_planted_signal_is_recovered_out_of_sample():
    ds, truth = _dataset("planted", 0.12, seed=5)
    hpo, gov = _train(ds)
    planted = truth["realized_rank_ic"]
    assert hpo.n_trials == 2 and gov["n_trials"] == 2
    print(f"OOS rank IC {gov['oos_rank_ic']:.4f} vs planted {planted:.4f}")
    assert gov["oos_rank_ic"] >= 0.6 * planted, (gov["oos_rank_ic"], planted)
    assert all(ic > 0 for ic in gov["rank_ic_by_path"])
    lenient = PromotionPolicy(min_path_sharpe=0.0, max_drawdown=1.0, min_dsr=0.0, max_pbo=1.0)
    decision = decide(gov, None, lenient)
    assert decision.promote, decision.reasons()


def test_noise_has_no_oos_signal_and_promotion_refuses():
    ds, _ = _dataset("noise", 0.0, seed=6)
    hpo, gov = _train(ds)
    # the standard error of the mean rank IC over non-overlapping sessions
    oof = hpo.nested_cv.mean_prediction  # the paths the gate read
    keep = np.isin(ds.session, np.unique(ds.session)[::5])
    per = ic_by_session(oof[keep], ds.y[keep], ds.session[keep])
    summ = ic_summary(per)
    se = summ["rank_ic_std"] / math.sqrt(summ["rank_ic_n_sessions"])
    assert abs(gov["oos_rank_ic"]) <= 2 * se, (gov["oos_rank_ic"], se)
    decision = decide(gov, None, PromotionPolicy())
    assert not decision.promote


@pytest.mark.parametrize("mode", ["planted"])
def test_training_is_deterministic(mode):
    ds, _ = _dataset(mode, 0.1, seed=8)
    a, _ = _train(ds, n_trials=1)
    b, _ = _train(ds, n_trials=1)
    assert a.best_params == b.best_params
    assert np.array_equal(a.best_cv.oof, b.best_cv.oof)
    # with one configuration there is nothing to select: the nested paths are its own
    assert np.array_equal(a.nested_cv.oof, a.best_cv.oof)


def test_triple_barrier_classifier_finds_the_signal_and_is_calibrated():
    ds, truth = _dataset("planted", 0.12, seed=5, class_label="tb_label")
    assert set(np.unique(ds.y_class)) == {0.0, 1.0}
    # purging covers both label windows: t1 is the later of the two ends
    assert (ds.frame.get_column("t1") >= ds.frame.get_column("date")).all()
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=10)
    params = {**FAST, "objective": "binary"}
    hpo = run_hpo(
        ds, cv, kind="lgbm", n_trials=1, base_params=params, grid=GRID, seed=3,
        objective="classification",
    )  # fmt: skip
    gov = governance(ds, hpo, horizon=5, spread_bps=5.0, objective="classification")
    prob = hpo.nested_cv.mean_prediction
    assert ((prob >= 0) & (prob <= 1)).all()
    assert gov["oos_rank_ic"] > 0.3 * truth["realized_rank_ic"]
    assert gov["brier"] < 0.25  # better than a coin flip
    bins = gov["reliability"]
    assert int(bins.get_column("count").sum()) == len(ds)
    filled = bins.filter(bins.get_column("count") > 0)
    weights = filled.get_column("count").to_numpy() / len(ds)
    gap = np.abs(
        filled.get_column("mean_pred").to_numpy() - filled.get_column("frac_pos").to_numpy()
    )
    assert float((weights * gap).sum()) < 0.05  # expected calibration error


# --- cross_validate's fast path (FoldMatrix, reused buffers, exact ONNX scoring) changes nothing


def _panel(seed: int, *, shuffle: bool, n_symbols: int = 30, n_sessions: int = 260):
    """A small session-major panel with a planted signal, warm-up NaNs and scattered NaNs."""
    rng = np.random.default_rng(seed)
    session = np.repeat(np.arange(n_sessions), n_symbols)
    n = session.size
    x = rng.normal(size=(n, 5)) * [1.0, 0.02, 30.0, 1.0, 5.0] + [0.0, 0.0, 100.0, 0.0, -2.0]
    x[session < 40, 3] = np.nan
    x[rng.random(n) < 0.05, 1] = np.nan
    x[:, 4] = np.round(x[:, 4])  # exact zeros: LightGBM splits at ±1e-35
    y = 0.3 * x[:, 0] - 10 * np.nan_to_num(x[:, 1]) + rng.normal(size=n)
    names = [f"f{j}" for j in range(5)]
    frame = pl.DataFrame(
        {
            "date": np.datetime64("2020-01-01") + session.astype("timedelta64[D]"),
            "symbol": np.tile([f"S{i:02d}" for i in range(n_symbols)], n_sessions),
            **{name: x[:, j] for j, name in enumerate(names)},
            "y": y,
            "y_class": (y > 0).astype(np.float64),
        }
    )
    t1 = session + 5
    if shuffle:
        order = rng.permutation(n)
        frame, session, t1 = frame[order], session[order], t1[order]
    return AlphaDataset(frame, names, "fwd_ret_5", session, t1, class_label="tb_label")


def _plain_cross_validate(ds, cv, make_model, *, half_life_months=None, objective="regression"):
    """The straightforward loop: gather rows, numpy stats, scale, fit, native predict."""
    y = training_target(ds, objective)
    x_all = ds.frame.select(ds.feature_names).to_numpy()
    preds = []
    for train, test in cv.split(ds.session, ds.t1):
        x = x_all[train]
        center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        for j in range(x.shape[1]):
            col = x[~np.isnan(x[:, j]), j]
            center[j], s = col.mean(), col.std(ddof=1)
            scale[j] = s if s > 0 else 1.0

        def scaled(rows, c=center, s=scale):
            return np.clip((x_all[rows] - c) / s, -5.0, 5.0)

        w = time_decay_weights(ds.dates[train], half_life_months=half_life_months)
        model = make_model().fit(scaled(train), y[train], sample_weight=w)
        preds.append(np.asarray(model.predict(scaled(test)), dtype=np.float64))
    return cv.assemble_paths(ds.session, ds.t1, preds)


class _Ridge:
    """A non-LightGBM model (the generic predict path) that keeps a view of its training X."""

    def fit(self, X, y, sample_weight=None):
        self.X_ = X
        a = np.nan_to_num(X)
        self.coef_ = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ y)
        return self

    def predict(self, X):
        return np.nan_to_num(X) @ self.coef_


CV_CASES = {
    "lgbm": (lambda: LGBMAlpha(n_estimators=15, num_leaves=7, n_jobs=1), {}, False),
    "lgbm_shuffled_rows": (  # rows not session-sorted: FoldMatrix gathers instead of slicing
        lambda: LGBMAlpha(n_estimators=15, num_leaves=7, n_jobs=1),
        {"half_life_months": 3.0},
        True,
    ),
    "lgbm_binary": (
        lambda: LGBMAlpha(objective="binary", n_estimators=15, num_leaves=7, n_jobs=1),
        {"objective": "classification"},
        False,
    ),
    "ridge": (_Ridge, {}, False),
}


@pytest.mark.parametrize("case", list(CV_CASES))
def test_cross_validate_equals_the_plain_loop_exactly(case: str) -> None:
    make_model, kwargs, shuffle = CV_CASES[case]
    ds = _panel(12, shuffle=shuffle)
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=5)
    res = cross_validate(ds, cv, make_model, **kwargs)
    expected = _plain_cross_validate(ds, cv, make_model, **kwargs)
    assert res.oof.shape == (cv.n_paths, len(ds))
    assert np.std(expected) > 1e-3
    np.testing.assert_array_equal(res.oof, expected)
    assert 0 < res.fit_seconds <= res.total_seconds


def test_cross_validate_scores_lightgbm_folds_with_the_exact_scorer(monkeypatch) -> None:
    rows_scored = []
    original = onnx_export.LGBMExactScorer.predict

    def counting(self, X):
        rows_scored.append(len(X))
        return original(self, X)

    monkeypatch.setattr(onnx_export.LGBMExactScorer, "predict", counting)
    ds = _panel(13, shuffle=False)
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo=5)
    cross_validate(ds, cv, lambda: LGBMAlpha(n_estimators=5, num_leaves=7, n_jobs=1))
    # per split: a 256-row agreement check, then the whole test fold
    assert len(rows_scored) == 2 * cv.get_n_splits()
    assert sum(rows_scored[1::2]) == len(ds) * cv.n_paths  # each group is tested n_paths times


def test_nested_selection_never_reads_the_test_span_it_chooses_for():
    """Hand-worked: trial 0 shines on sessions 0–1 only, trial 1 on 2–3 only. The split that
    tests 0–1 must choose by sessions 2–3 (→ trial 1), and vice versa, so the nested paths
    earn nothing although the best single trial has a mean rank IC of 0.45."""
    ics = np.array([[0.9, 0.9, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    splits = [np.array([0, 1]), np.array([2, 3])]
    assert nested_selection(ics, splits).tolist() == [1, 0]
    # NaN sessions are skipped; a trial with nothing outside the span is never preferred
    ics_nan = np.array([[np.nan, np.nan, 0.1, 0.1], [np.nan, np.nan, np.nan, np.nan]])
    assert nested_selection(ics_nan, [np.array([0, 1])]).tolist() == [0]
    # ties go to the earlier trial (deterministic)
    assert nested_selection(np.zeros((3, 4)), splits).tolist() == [0, 0]


def test_gate_metrics_come_from_the_nested_paths():
    ds, _ = _dataset("noise", 0.0, seed=6)
    hpo, gov = _train(ds, n_trials=3)
    assert hpo.split_choice is not None and len(hpo.split_choice) == 15  # C(6, 2) splits
    assert hpo.nested_cv.oof.shape == hpo.best_cv.oof.shape
    ic = ic_summary(ic_by_session(hpo.nested_cv.oof[0], ds.y, ds.session))["rank_ic_mean"]
    assert gov["rank_ic_by_path"][0] == pytest.approx(ic, abs=1e-12)
    assert gov["hpo_best_rank_ic"] == hpo.best_value == max(t["rank_ic"] for t in hpo.trials)
