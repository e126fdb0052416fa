"""Risk from point-in-time features."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from trademl.portfolio.inputs import risk_from_features

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


def test_risk_is_daily_sigma_and_adv() -> None:
    r = risk_from_features(_features())
    assert r.get_column("sigma")[1] == pytest.approx(0.32 / math.sqrt(252))
    assert r.get_column("adv").to_list() == [1e5, 2e5, 1e5, 2e5]
    with pytest.raises(ValueError, match="adv_20"):
        risk_from_features(_features().drop("adv_20"))
