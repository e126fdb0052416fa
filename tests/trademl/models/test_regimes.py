"""Per-regime evaluation: the high-vol mask from the market-vol feature and IC per regime."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from trademl.models.equities.regimes import rank_ic_by_regime, session_regimes
from trademl.models.equities.weights import high_vol_flags


def test_high_vol_flags_by_hand() -> None:
    # the 2nd value onward compares with the 0.5-quantile (median) of all earlier values
    flags = high_vol_flags([1.0, 2.0, 1.0, 3.0, np.nan, 0.5], quantile=0.5, min_history=1)
    # t=1: 2 > 1 ✓; t=2: 1 > median(1,2)=1.5 ✗; t=3: 3 > median(1,1,2)=1 ✓; NaN never; 0.5 ✗
    assert flags.tolist() == [False, True, False, True, False, False]


def test_flags_never_change_when_sessions_are_appended() -> None:
    v = np.random.default_rng(3).lognormal(size=300)
    short = high_vol_flags(v[:200], min_history=20)
    np.testing.assert_array_equal(high_vol_flags(v, min_history=20)[:200], short)


def test_session_regimes_and_ic_by_regime() -> None:
    # 4 sessions × 2 names; the regime column repeats the session's market vol
    session = np.repeat(np.arange(4), 2)
    vol = np.repeat([0.1, 0.1, 0.5, 0.1], 2)
    frame = pl.DataFrame({"mkt_rvol_20": vol})
    reg = session_regimes(frame, session, quantile=0.5, min_history=1)
    assert reg.get_column("high_vol").to_list() == [False, False, True, False]
    ic = pl.DataFrame({"session": np.arange(4), "rank_ic": [0.1, 0.3, -0.4, np.nan]})
    out = rank_ic_by_regime(ic, reg)
    assert out["rank_ic_mean_high_vol"] == pytest.approx(-0.4)
    assert out["rank_ic_mean_calm"] == pytest.approx(0.2)  # the NaN session is skipped
    assert out["n_sessions_calm"] == 2 and out["n_sessions_high_vol"] == 1
    empty = rank_ic_by_regime(ic.filter(pl.col("session") != 2), reg)
    assert math.isnan(empty["rank_ic_mean_high_vol"]) and empty["n_sessions_high_vol"] == 0


def test_missing_regime_column_is_named() -> None:
    with pytest.raises(ValueError, match="mkt_rvol_20"):
        session_regimes(pl.DataFrame({"x": [1.0]}), np.array([0]))
