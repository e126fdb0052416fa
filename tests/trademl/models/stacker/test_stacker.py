"""The stacker learns only from out-of-fold rows, combines sleeves that see different signals,
ignores noise, refuses misaligned layouts, and its gate reads its own out-of-sample record."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from tests.trademl.models.stacker.synthetic import SESSIONS, Panel
from trademl.config import StackerPromotionConfig
from trademl.models.stacker.combiners import fit_linear, gram
from trademl.models.stacker.model import StackerModel
from trademl.models.stacker.normalize import session_codes, xs_zscore
from trademl.models.stacker.promotion import decide
from trademl.models.stacker.train import train_stacker
from trademl.validation.layout import LayoutMismatch


def test_nnls_matches_a_hand_worked_least_squares_and_clips_negative_weights():
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
    y = 0.7 * z[:, 0] + 0.3 * z[:, 1]
    w = fit_linear(gram(z, y), method="nnls")
    assert w == pytest.approx([0.7, 0.3], abs=1e-9)  # exact fit, already sums to 1
    # y anti-correlated with the second column: its weight is 0, not negative
    w = fit_linear(gram(z, 2 * z[:, 0] - z[:, 1]), method="nnls")
    assert w[1] == 0.0 and w[0] == pytest.approx(1.0)
    # nothing helps: all-zero weights (the stacker then predicts nothing; its gate fails closed)
    assert fit_linear(gram(z, -z.sum(axis=1)), method="nnls").tolist() == [0.0, 0.0]
    # positive ridge shrinks toward equal use of correlated sleeves but keeps w >= 0, Σw = 1
    r = fit_linear(gram(z, y), method="positive_ridge", ridge_alpha=10.0)
    assert (r >= 0).all() and r.sum() == pytest.approx(1.0) and abs(r[0] - r[1]) < 0.4


def test_cross_sectional_zscore_per_session_by_hand():
    codes = session_codes(pl.Series([dt.date(2024, 1, 2)] * 3 + [dt.date(2024, 1, 3)] * 2))
    z = xs_zscore(np.array([1.0, 2.0, 3.0, 5.0, np.nan]), codes)
    s = np.sqrt(2 / 3)  # population std of 1, 2, 3
    assert z == pytest.approx([-1 / s, 0.0, 1 / s, 0.0, 0.0])  # one value left: neutral


def test_two_sleeves_seeing_different_signals_stack_better_than_either_and_are_promoted():
    p = Panel(seed=1, t=500, n=100)
    a, b = p.signal(), p.signal()
    y = 0.02 * (0.15 * a + 0.15 * b + p.rng.normal(size=a.size))  # daily-return scale
    oofs = {
        "sees_a": p.sleeve("sees_a", y, p.noisy(a)),
        "sees_b": p.sleeve("sees_b", y, p.noisy(b)),
    }
    fit = train_stacker(oofs, sessions=SESSIONS)
    w = fit.model.weight_map
    assert w["sees_a"] > 0.3 and w["sees_b"] > 0.3
    m = fit.metrics
    for name in ("sees_a", "sees_b"):
        assert m["oos_rank_ic"] > fit.sleeve_metrics[name]["rank_ic_median_path"] + 0.01
    decision = decide(m, None, StackerPromotionConfig())
    assert decision.promote, decision.summary()
    # its own record is out of sample: weights per (path, group) were fit without the group
    assert fit.split_weights.select("path", "group").unique().height == 7 * 8
    assert fit.n_trials == 4 + 4 + 2  # both sleeves' searches and the stacker's candidates
    assert fit.oof.height == p.frame.height and fit.oof.get_column("oof").is_finite().all()


def test_a_pure_noise_sleeve_gets_no_weight():
    p = Panel(seed=5)
    a = p.signal()
    y = 0.02 * (0.15 * a + p.rng.normal(size=a.size))
    oofs = {
        "sees_a": p.sleeve("sees_a", y, p.noisy(a)),
        "noise": p.sleeve("noise", y, p.noisy(p.signal())),
    }
    w = train_stacker(oofs, sessions=SESSIONS).model.weight_map
    # a noise sleeve's sample correlation with the label is ~1/√rows: its weight is that small
    assert w["noise"] < 0.1 and w["sees_a"] > 0.9


def test_a_sleeve_perfect_in_sample_but_worthless_out_of_fold_gets_zero_weight():
    """Only OOF rows reach the stacker: a memorizer's in-sample predictions would win it all,
    its out-of-fold ones are noise and get nothing."""
    p = Panel(seed=2)
    a = p.signal()
    y = 0.02 * (0.15 * a + p.rng.normal(size=a.size))
    good = p.sleeve("good", y, p.noisy(a))
    oof_noise = p.sleeve("memorizer", y, p.noisy(p.signal()))
    fit = train_stacker({"good": good, "memorizer": oof_noise}, sessions=SESSIONS)
    assert fit.model.weight_map["memorizer"] < 0.1  # sampling noise only (~1/√rows)
    # the same sleeve judged on its in-sample predictions (y itself) would take the weight:
    # the test can fail if the stacker ever saw anything but OOF
    leaked = p.sleeve("memorizer", y, [y] * p.cv.n_paths)
    assert (
        train_stacker({"good": good, "memorizer": leaked}, sessions=SESSIONS).model.weight_map[
            "memorizer"
        ]
        > 0.9
    )


def test_misaligned_layouts_are_refused_naming_the_sleeves_and_the_difference():
    p, q = Panel(seed=3), Panel(seed=3, end_offset=40)  # the same shape, ten sessions earlier
    y = p.signal()
    with pytest.raises(LayoutMismatch, match=r"OOF of a and b .*window"):
        train_stacker({"a": p.sleeve("a", y, y), "b": q.sleeve("b", y, y)}, sessions=SESSIONS)
    # a walk-forward sleeve trained inside the CPCV window is not out of fold for every group
    inside = dt.date.fromisoformat(p.layout.groups[3][0])
    with pytest.raises(LayoutMismatch, match=r"wf .*trained up to .*inside the CPCV window"):
        train_stacker(
            {"a": p.sleeve("a", y, y), "wf": p.walk_forward("wf", y, y, inside)}, sessions=SESSIONS
        )
    # ... one trained before the window is, and stacks
    before = dt.date.fromisoformat(p.layout.first_session) - dt.timedelta(days=30)
    a = p.signal()
    y2 = 0.1 * a + p.rng.normal(size=a.size)
    fit = train_stacker(
        {"a": p.sleeve("a", y2, p.noisy(a)), "wf": p.walk_forward("wf", y2, a, before)},
        sessions=SESSIONS,
    )
    assert fit.model.weight_map["wf"] > 0.3


def test_the_served_model_scores_live_frames_with_the_training_normalization(tmp_path):
    p = Panel(seed=4, t=200, n=30)
    a, b = p.signal(), p.signal()
    y = 0.2 * a + 0.1 * b + p.rng.normal(size=a.size)
    fit = train_stacker(
        {"x": p.sleeve("x", y, p.noisy(a, 0.5)), "z": p.sleeve("z", y, p.noisy(b, 0.5))},
        sessions=SESSIONS,
    )
    loaded = StackerModel.load(fit.model.save(tmp_path / "stk"))
    assert loaded.weight_map == fit.model.weight_map
    day = pl.DataFrame(
        {
            "date": [dt.date(2024, 1, 2)] * 4,
            "symbol": list("ABCD"),
            "x": [1.0, 2.0, 3.0, None],
            "z": [10.0, 40.0, 20.0, 30.0],
        }
    )
    scored = loaded.score(day)
    zx = xs_zscore(day.get_column("x").to_numpy(), np.zeros(4, dtype=np.int64))
    zz = xs_zscore(day.get_column("z").to_numpy(), np.zeros(4, dtype=np.int64))
    w = loaded.weight_map
    assert scored.get_column("score").to_numpy() == pytest.approx(w["x"] * zx + w["z"] * zz)


def test_gate_bars_fail_closed_and_face_the_champion():
    good = {
        "oos_rank_ic": 0.08,
        "best_sleeve_rank_ic": 0.06,
        "pbo": 0.01,
        "best_sleeve_pbo": 0.02,
        "dsr": 0.99,
        "best_sleeve_dsr": 0.98,
    }
    bars = StackerPromotionConfig()
    assert decide(good, None, bars).promote
    assert not decide({**good, "oos_rank_ic": 0.06}, None, bars).promote  # not above the best
    assert not decide({**good, "pbo": 0.2}, None, bars).promote  # worse than sleeve and bar
    assert decide({**good, "pbo": 0.04}, None, bars).promote  # worse than sleeve, within bar
    assert not decide({**good, "dsr": float("nan")}, None, bars).promote
    assert not decide(good, {"oos_rank_ic": 0.09}, bars).promote  # the champion is better
    assert decide(good, {"oos_rank_ic": 0.07}, bars).promote


@pytest.mark.parametrize("method", ["positive_ridge", "lgbm_monotone"])
def test_the_optional_combiners_also_learn_from_oof_and_round_trip(method, tmp_path):
    p = Panel(seed=6, t=300, n=60)
    a, b = p.signal(), p.signal()
    y = 0.02 * (0.15 * a + 0.15 * b + p.rng.normal(size=a.size))
    oofs = {"a": p.sleeve("a", y, p.noisy(a)), "b": p.sleeve("b", y, p.noisy(b))}
    fit = train_stacker(oofs, sessions=SESSIONS, method=method, ridge_alpha=1.0, lgbm_trees=20)
    m = fit.metrics
    assert m["oos_rank_ic"] > max(s["rank_ic_median_path"] for s in fit.sleeve_metrics.values())
    loaded = StackerModel.load(fit.model.save(tmp_path / method))
    z = np.column_stack([np.linspace(-2, 2, 9), np.zeros(9)])
    scored = loaded.predict_matrix(z)
    assert scored == pytest.approx(fit.model.predict_matrix(z))
    assert (np.diff(scored) >= -1e-12).all()  # non-decreasing in every sleeve's score
