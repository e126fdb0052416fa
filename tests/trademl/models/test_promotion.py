"""Promotion fails closed: every check must pass, NaN or missing blocks, champion must be beaten."""

from __future__ import annotations

import math

from trademl.models.equities.promotion import PromotionPolicy, decide

GOOD = {
    "path_sharpe_median": 1.4,
    "max_drawdown": 0.12,
    "dsr": 0.97,
    "pbo": 0.01,
    "oos_rank_ic": 0.05,
    "baseline_rank_ic": 0.01,
}
POLICY = PromotionPolicy()


def test_first_model_passing_absolute_bars_is_promoted():
    d = decide(GOOD, None, POLICY)
    assert d.promote
    assert {c.name for c in d.checks} == {
        "path_sharpe_median",
        "max_drawdown",
        "dsr",
        "pbo",
        "rank_ic_vs_baseline",
    }
    assert "passes" in d.reasons()["dsr"]


def test_each_failing_bar_blocks_alone():
    for key, bad in [
        ("path_sharpe_median", 0.99),
        ("max_drawdown", 0.21),
        ("dsr", 0.94),
        ("pbo", 0.06),
        ("oos_rank_ic", 0.012),  # not above baseline 0.01 + margin 0.005
    ]:
        d = decide({**GOOD, key: bad}, None, POLICY)
        assert not d.promote, key
        failed = [c for c in d.checks if not c.passed]
        assert len(failed) == 1, (key, failed)


def test_nan_or_missing_metric_fails_closed():
    for key in GOOD:
        assert not decide({**GOOD, key: math.nan}, None, POLICY).promote, key
        missing = {k: v for k, v in GOOD.items() if k != key}
        d = decide(missing, None, POLICY)
        assert not d.promote, key
        assert any("fail closed" in r for r in d.reasons().values())


def test_challenger_must_beat_champion():
    assert decide(GOOD, {"oos_rank_ic": 0.04}, POLICY).promote
    lost = decide(GOOD, {"oos_rank_ic": 0.05}, POLICY)
    assert not lost.promote
    assert "fails" in lost.reasons()["rank_ic_vs_champion"]
    assert not decide(GOOD, {"oos_rank_ic": math.nan}, POLICY).promote
