"""Alpha scores (champion or fallback) and risk from point-in-time features."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from trademl.portfolio.inputs import alpha_scores, risk_from_features

D1, D2 = dt.date(2024, 3, 4), dt.date(2024, 3, 5)


def _features() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [D1, D1, D2, D2],
            "symbol": ["A", "B", "A", "B"],
            "mom_12_1": [0.1, -0.2, None, 0.3],
            "rvol_20": [0.16, 0.32, 0.16, 0.32],
            "adv_20": [1e5, 2e5, 1e5, 2e5],
        }
    )


def test_champion_scores_win_and_the_fallback_fills_other_sessions() -> None:
    scores = pl.DataFrame(
        {"date": [D2, D2], "symbol": ["A", "B"], "score": [0.5, -0.5], "model_version": ["3", "3"]}
    )
    out = alpha_scores(scores, _features(), fallback_feature="mom_12_1")
    assert out.get_column("source").to_list() == [
        "fallback:mom_12_1",
        "fallback:mom_12_1",
        "equities_xs@3",
        "equities_xs@3",
    ]
    assert out.get_column("score").to_list() == [0.1, -0.2, 0.5, -0.5]


def test_no_fallback_means_no_positions_without_a_champion() -> None:
    empty = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "score": pl.Float64})
    assert alpha_scores(empty, _features(), fallback_feature=None).height == 0
    out = alpha_scores(empty, _features(), fallback_feature="mom_12_1")
    assert out.height == 4 and math.isnan(out.get_column("score")[2])  # null → NaN: no position
    with pytest.raises(ValueError, match="nope"):
        alpha_scores(empty, _features(), fallback_feature="nope")


def test_risk_is_daily_sigma_and_adv() -> None:
    r = risk_from_features(_features())
    assert r.get_column("sigma")[1] == pytest.approx(0.32 / math.sqrt(252))
    assert r.get_column("adv").to_list() == [1e5, 2e5, 1e5, 2e5]
    with pytest.raises(ValueError, match="adv_20"):
        risk_from_features(_features().drop("adv_20"))
