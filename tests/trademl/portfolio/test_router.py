"""The router serves each session by the first path that applies, exactly as configured, and
says which path and which versions served."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trademl.models.stacker.model import StackerModel
from trademl.models.stacker.normalize import xs_zscore
from trademl.portfolio.router import StackerCandidate, route_session

D = dt.date(2024, 3, 5)
SYMS = ["A", "B", "C", "D"]


def _scores(values: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"symbol": SYMS, "score": values})


LGBM = _scores([0.1, 0.2, 0.3, 0.4])
LINEAR = _scores([4.0, 1.0, 3.0, 2.0])
FIT_FREE = _scores([-1.0, 0.0, 1.0, 2.0])
VERSIONS = {"lgbm": "3", "linear": "2"}
TRIALS = {"lgbm": 10, "linear": 4}


def _stacker(version: str, sleeves: tuple[str, ...], weights: list[float]) -> StackerCandidate:
    model = StackerModel(sleeves, "nnls", weights=np.array(weights))
    return StackerCandidate(version, D, model, n_trials=16)


def _route(scores, stackers=(), *, enabled=True, fallback=None, fit_free=FIT_FREE):
    return route_session(
        D,
        scores,
        VERSIONS,
        TRIALS,
        list(stackers),
        stacker_enabled=enabled,
        fallback_weights=fallback or {},
        fit_free=fit_free,
        fit_free_name="mom_12_1",
    )


def _z(values: list[float]) -> np.ndarray:
    return xs_zscore(np.array(values), np.zeros(len(values), dtype=np.int64))


def test_the_stacker_champion_serves_when_every_sleeve_it_needs_scored():
    champ = _stacker("5", ("lgbm", "linear"), [0.75, 0.25])
    r = _route({"lgbm": LGBM, "linear": LINEAR}, [champ])
    assert r.path == "stacker"
    assert r.models == {"lgbm": "3", "linear": "2", "stacker": "5"}
    assert r.n_trials == 16
    expected = 0.75 * _z([0.1, 0.2, 0.3, 0.4]) + 0.25 * _z([4.0, 1.0, 3.0, 2.0])
    assert r.frame.get_column("score").to_numpy() == pytest.approx(expected)
    assert set(r.frame.get_column("path")) == {"stacker"}


def test_a_missing_sleeve_falls_to_a_promoted_stacker_on_the_sleeves_present():
    champ = _stacker("5", ("lgbm", "linear"), [0.5, 0.5])
    older = _stacker("2", ("lgbm",), [1.0])
    r = _route({"lgbm": LGBM, "linear": LINEAR.clear()}, [champ, older])
    assert r.path == "stacker_subset" and r.models == {"lgbm": "3", "stacker": "2"}


def test_without_a_usable_stacker_the_configured_fallback_weights_serve():
    champ = _stacker("5", ("lgbm", "linear"), [0.5, 0.5])
    # linear missing and no subset stacker: fallback weights over the sleeves present
    r = _route({"lgbm": LGBM}, [champ], fallback={"lgbm": 2.0, "linear": 1.0})
    assert r.path == "fallback_weights" and r.models == {"lgbm": "3"} and r.n_trials == 10
    assert r.frame.get_column("score").to_numpy() == pytest.approx(_z([0.1, 0.2, 0.3, 0.4]))
    # both present, stacker switched off: the configured weights, renormalized (2/3, 1/3)
    r = _route(
        {"lgbm": LGBM, "linear": LINEAR},
        [champ],
        enabled=False,
        fallback={"lgbm": 2.0, "linear": 1.0},
    )
    expected = (2 * _z([0.1, 0.2, 0.3, 0.4]) + _z([4.0, 1.0, 3.0, 2.0])) / 3
    assert r.path == "fallback_weights" and r.n_trials == 14
    assert r.frame.get_column("score").to_numpy() == pytest.approx(expected)
    # no weights configured: equal weights
    r = _route({"lgbm": LGBM, "linear": LINEAR}, [], fallback={})
    expected = (_z([0.1, 0.2, 0.3, 0.4]) + _z([4.0, 1.0, 3.0, 2.0])) / 2
    assert r.frame.get_column("score").to_numpy() == pytest.approx(expected)
    # weights configured, but none for the sleeve present: no scores (a flat book), said so
    r = _route({"linear": LINEAR}, [], fallback={"lgbm": 1.0})
    assert r.path == "fallback_weights" and r.frame.height == 0


def test_no_sleeve_champion_trades_the_fit_free_feature_or_nothing():
    r = _route({"lgbm": LGBM.clear(), "linear": LINEAR.clear()}, [])
    assert r.path == "fit_free" and r.models == {"fit_free": "mom_12_1"} and r.n_trials == 1
    assert r.frame.get_column("score").to_list() == [-1.0, 0.0, 1.0, 2.0]
    r = _route({}, [], fit_free=None)
    assert r.path == "fit_free" and r.frame.height == 0
