"""PSI against a hand-worked case, and its properties: zero for the same distribution, large
for a shifted one, NaN without data."""

import math

import numpy as np
import polars as pl
import pytest

from trademl.data.drift import feature_drift, psi


def test_psi_by_hand():
    # reference 0..9 with 2 bins: the median edge 4.5 → shares (0.5, 0.5); current has 8 of
    # 10 values above it → (0.2, 0.8): PSI = (0.2−0.5)·ln(0.2/0.5) + (0.8−0.5)·ln(0.8/0.5)
    ref = np.arange(10.0)
    cur = np.array([0, 1, 5, 6, 7, 8, 9, 9, 9, 9], dtype=float)
    expected = -0.3 * math.log(0.4) + 0.3 * math.log(1.6)
    assert psi(ref, cur, bins=2) == pytest.approx(expected)


def test_psi_properties():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(20_000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, rng.standard_normal(20_000)) < 0.01
    assert psi(ref, rng.standard_normal(20_000) + 1.0) > 0.25
    assert math.isnan(psi(ref, np.array([np.nan])))
    drift = feature_drift(
        pl.DataFrame({"a": ref, "b": ref}),
        pl.DataFrame({"a": ref, "b": ref + 2.0}),
        ["a", "b", "missing"],
    )
    assert set(drift) == {"a", "b"} and drift["a"] < 1e-9 < 0.25 < drift["b"]
