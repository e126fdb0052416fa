"""Portfolio sizing: hand-worked Kelly, vol target, caps (property test), ranks, bad input."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trademl.portfolio import PortfolioParams, forecast_vol, kelly_weights, target_weights

D0 = dt.date(2024, 1, 2)
LOOSE = {"name_cap": 100.0, "gross_cap": 100.0}


def _frames(scores: np.ndarray, sigmas: np.ndarray, n_sessions: int = 1):
    """Long (date, symbol, score) and (date, symbol, sigma) frames from [session, name] arrays."""
    scores = np.atleast_2d(scores)
    sigmas = np.broadcast_to(np.atleast_2d(sigmas), scores.shape)
    t, n = scores.shape
    dates = [D0 + dt.timedelta(days=i) for i in range(t) for _ in range(n)]
    syms = [f"S{j:03d}" for _ in range(t) for j in range(n)]
    s = pl.DataFrame({"date": dates, "symbol": syms, "score": scores.ravel()})
    v = pl.DataFrame({"date": dates, "symbol": syms, "sigma": np.asarray(sigmas).ravel()})
    return s, v


def test_kelly_formula_hand_worked() -> None:
    # μ = 10 bp/day, σ = 2 %/day, half Kelly: 0.5 · 0.001 / 0.0004 = 1.25.
    assert kelly_weights(0.001, 0.02, 0.5) == pytest.approx(1.25)
    # Full Kelly, μ = −5 bp, σ = 1 %: −0.0005 / 0.0001 = −5.
    assert kelly_weights(-0.0005, 0.01, 1.0) == pytest.approx(-5.0)


def test_pipeline_kelly_step_hand_worked_4_names() -> None:
    # Scores 1..4 -> ranks 1..4, u = (r − ½)/4 = 1/8, 3/8, 5/8, 7/8,
    # z = Φ⁻¹(u) = ∓1.1503493803760079, ∓0.3186393639643752.
    z1, z2 = 1.1503493803760079, 0.3186393639643752
    sig = np.array([0.01, 0.02, 0.02, 0.04])
    # μ = ic·σ·z and Kelly w = f·μ/σ² = f·ic·z/σ with f = 0.5, ic = 0.05 (f·ic = 0.025):
    kelly = 0.025 * np.array([-z1, -z2, z2, z1]) / sig  # −2.8759, −0.3983, 0.3983, 0.7190
    long_g, short_g = kelly[2] + kelly[3], -(kelly[0] + kelly[1])
    half = (long_g + short_g) / 2.0  # each leg rescaled to half the Kelly gross
    expect = np.where(kelly > 0, kelly * half / long_g, kelly * half / short_g)
    s, v = _frames(np.array([1.0, 2.0, 3.0, 4.0]), sig)
    p = PortfolioParams(ic=0.05, kelly_fraction=0.5, vol_target=None, **LOOSE)
    out = target_weights(s, v, p)
    np.testing.assert_allclose(out["weight"].to_numpy(), expect, rtol=1e-12)
    assert out["weight"].sum() == pytest.approx(0.0, abs=1e-14)
    # Full Kelly doubles every weight (no cap binds).
    p1 = PortfolioParams(ic=0.05, kelly_fraction=1.0, vol_target=None, **LOOSE)
    np.testing.assert_allclose(target_weights(s, v, p1)["weight"].to_numpy(), 2 * expect)
    # Long-only keeps the raw positive Kelly weights, no rescaling.
    p2 = PortfolioParams(ic=0.05, vol_target=None, long_only=True, **LOOSE)
    np.testing.assert_allclose(
        target_weights(s, v, p2)["weight"].to_numpy(), np.maximum(kelly, 0.0), rtol=1e-12
    )


def test_vol_target_hit_on_diagonal_risk() -> None:
    rng = np.random.default_rng(5)
    n = 200
    sig = rng.uniform(0.01, 0.04, n)
    s, v = _frames(rng.normal(size=n), sig)
    p = PortfolioParams(vol_target=0.10, **LOOSE)
    w = target_weights(s, v, p)["weight"].to_numpy()
    # Diagonal forecast risk: annual vol = √(252 · Σ w²σ²), computed here by hand.
    assert math.sqrt(252 * np.sum(w**2 * sig**2)) == pytest.approx(0.10, rel=1e-10)
    assert forecast_vol(target_weights(s, v, p), v)["vol"][0] == pytest.approx(0.10, rel=1e-10)
    # Confidence 0.5 halves the book (no cap binds).
    w_half = target_weights(s, v, p, confidence=0.5)["weight"].to_numpy()
    np.testing.assert_allclose(w_half, w / 2, rtol=1e-12)


def test_caps_bind_and_win_over_vol_target() -> None:
    rng = np.random.default_rng(6)
    s, v = _frames(rng.normal(size=(3, 30)), 0.01, n_sessions=3)
    p = PortfolioParams(vol_target=0.40, name_cap=0.05, gross_cap=1.0)
    out = target_weights(s, v, p)
    w = out["weight"].to_numpy()
    assert np.abs(w).max() <= 0.05 + 1e-15
    g = out.group_by("date").agg(pl.col("weight").abs().sum().alias("g"), pl.col("weight").sum())
    assert (g["g"] <= 1.0 + 1e-12).all()
    assert np.abs(g["weight"].to_numpy()).max() < 1e-14
    assert (forecast_vol(out, v)["vol"] < 0.40).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 25),
    t=st.integers(1, 4),
    name_cap=st.floats(0.005, 0.5),
    gross_cap=st.floats(0.1, 3.0),
    vol_target=st.one_of(st.none(), st.floats(0.01, 1.0)),
    long_only=st.booleans(),
    frac=st.floats(0.5, 1.0),
    conf=st.floats(0.0, 1.0),
)
def test_caps_always_hold(seed, n, t, name_cap, gross_cap, vol_target, long_only, frac, conf):
    rng = np.random.default_rng(seed)
    sc = rng.standard_t(2, size=(t, n)) * 10 ** rng.uniform(-3, 3)
    sig = rng.lognormal(-4, 1, size=(t, n))
    sc[rng.random(sc.shape) < 0.15] = np.nan
    sig[rng.random(sig.shape) < 0.1] = np.nan
    sc[:, : n // 3] = np.round(sc[:, : n // 3])  # some ties
    s, v = _frames(sc, sig, t)
    p = PortfolioParams(
        name_cap=name_cap,
        gross_cap=gross_cap,
        vol_target=vol_target,
        long_only=long_only,
        kelly_fraction=frac,
    )
    out = target_weights(s, v, p, confidence=conf)
    w = out["weight"].to_numpy()
    assert out.height == t * n and np.isfinite(w).all()
    assert np.abs(w).max() <= name_cap * (1 + 1e-12)
    by = out.group_by("date").agg(pl.col("weight").abs().sum().alias("g"), pl.col("weight").sum())
    assert (by["g"].to_numpy() <= gross_cap * (1 + 1e-12)).all()
    if long_only:
        assert (w >= 0).all()
    else:
        assert np.abs(by["weight"].to_numpy()).max() <= 1e-12 * max(1.0, gross_cap)
    bad = ~(np.isfinite(sc) & np.isfinite(sig)).ravel()
    assert (w[bad] == 0).all()


def test_ranking_preserved_with_equal_sigma() -> None:
    rng = np.random.default_rng(8)
    sc = rng.normal(size=40)
    s, v = _frames(sc, 0.02)
    for long_only in (False, True):
        w = target_weights(s, v, PortfolioParams(long_only=long_only))["weight"].to_numpy()
        order = np.argsort(sc)
        assert (np.diff(w[order]) >= -1e-15).all()  # weakly increasing in the score
        if not long_only:
            assert np.sign(w[order[0]]) == -1 and np.sign(w[order[-1]]) == 1


def test_nan_rows_get_no_position_and_do_not_move_others() -> None:
    rng = np.random.default_rng(9)
    sc, sig = rng.normal(size=12), rng.uniform(0.01, 0.03, 12)
    sc[3], sig[7] = np.nan, np.nan
    s, v = _frames(sc, sig)
    v = v.filter(pl.col("symbol") != "S010")  # no sigma row at all for S010
    out = target_weights(s, v)
    w = dict(zip(out["symbol"], out["weight"], strict=True))
    assert w["S003"] == 0.0 and w["S007"] == 0.0 and w["S010"] == 0.0
    keep = [f"S{j:03d}" for j in range(12) if j not in (3, 7, 10)]
    ref = target_weights(s.filter(pl.col("symbol").is_in(keep)), v)
    np.testing.assert_allclose([w[k] for k in keep], ref["weight"].to_numpy(), rtol=1e-12)


def test_output_sorted_and_deterministic_under_shuffle() -> None:
    rng = np.random.default_rng(10)
    s, v = _frames(rng.normal(size=(4, 15)), rng.uniform(0.01, 0.03, (4, 15)), 4)
    a = target_weights(s, v)
    b = target_weights(s.sample(fraction=1.0, shuffle=True, seed=1), v.reverse())
    assert a.columns == ["date", "symbol", "weight"]
    assert a.equals(b)
    assert a.equals(a.sort("date", "symbol"))


def test_confidence_frame_missing_session_is_zero() -> None:
    s, v = _frames(np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]]), 0.02, 2)
    conf = pl.DataFrame({"date": [D0], "confidence": [0.5]})
    p = PortfolioParams(**LOOSE)
    out = target_weights(s, v, p, confidence=conf)
    full = target_weights(s, v, p)
    np.testing.assert_allclose(out["weight"][:3].to_numpy(), full["weight"][:3].to_numpy() / 2)
    assert (out["weight"][3:] == 0).all()


def test_bad_input_errors_name_column_and_session() -> None:
    s, v = _frames(np.array([1.0, 2.0, 3.0]), 0.02)
    d = str(D0)
    with pytest.raises(ValueError, match=r"scores is missing column\(s\) \['score'\]"):
        target_weights(s.drop("score"), v)
    with pytest.raises(ValueError, match=f"duplicate .* at session {d}"):
        target_weights(pl.concat([s, s[:1]]), v)
    with pytest.raises(ValueError, match=f"'score' is infinite at session {d} .*'S001'"):
        target_weights(s.with_columns(pl.Series("score", [1.0, np.inf, 2.0])), v)
    with pytest.raises(ValueError, match=f"'sigma' must be finite and > 0 at session {d}"):
        target_weights(s, v.with_columns(pl.Series("sigma", [0.02, -0.01, 0.02])))
    with pytest.raises(ValueError, match=f"confidence must lie in \\[0, 1\\] at session {d}"):
        target_weights(s, v, confidence=1.5)
    with pytest.raises(ValueError, match="'score' must be numeric"):
        target_weights(s.with_columns(pl.col("score").cast(pl.String)), v)
    with pytest.raises(ValueError, match="kelly_fraction"):
        PortfolioParams(kelly_fraction=0.3)
