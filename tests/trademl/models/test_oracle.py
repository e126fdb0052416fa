"""The planted oracle through the gate: a strong planted market lets it clear every bar (so
the bars are reachable); pure noise does not (so they are not free)."""

from __future__ import annotations

import datetime as dt

import pytest

from trademl.config import FeatureConfig, LabelConfig, PromotionConfig
from trademl.data.calendar import get_calendar
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
from trademl.features import build_features, feature_names
from trademl.labels import compute_labels
from trademl.models.equities.dataset import build_dataset
from trademl.models.equities.oracle import oracle_verdict
from trademl.validation.cpcv import CombinatorialPurgedCV

START, END = dt.date(2021, 1, 4), dt.date(2023, 3, 31)


def _dataset(mode: str):
    cal = get_calendar("XNYS", dt.date(2020, 11, 1))
    spec = SyntheticSpec(n_symbols=80, seed=5, start=START, alpha_mode=mode, target_ic=0.12)
    bars = SyntheticMarket(spec, cal).load(end=END)
    sessions = cal.sessions_in_range(START, END)
    feats = build_features(bars, sessions, cross_sectional=FeatureConfig().cross_sectional)
    labels = compute_labels(bars, sessions, LabelConfig())
    train = sessions[-300:]
    return build_dataset(
        feats.filter(feats["date"] >= train[0]),
        labels.filter(labels["date"] >= train[0]),
        label="fwd_ret_5",
        as_of=END,
        sessions=cal.sessions,
        feature_names=feature_names(FeatureConfig().cross_sectional),
    )


def test_the_oracle_clears_every_bar_on_a_planted_market_and_none_on_noise():
    cv = CombinatorialPurgedCV(n_groups=8, n_test_groups=2, embargo=10)
    metrics, decision = oracle_verdict(_dataset("planted"), cv)
    assert decision.promote, decision.summary()
    fam = metrics["family_rank_ic"]
    assert fam["mom_20"] == max(fam.values()) and metrics["oos_rank_ic"] > 0.08
    assert metrics["pbo"] < 0.05 and metrics["dsr"] > 0.95
    metrics, decision = oracle_verdict(_dataset("noise"), cv)
    assert not decision.promote
    assert {c.name for c in decision.failed()} >= {"path_sharpe_median", "dsr"}
    with pytest.raises(ValueError, match="family"):
        oracle_verdict(_dataset("noise"), cv, feature="mom_12_1")
    assert PromotionConfig().max_pbo == 0.05  # the bars are the code's, not relaxed here
