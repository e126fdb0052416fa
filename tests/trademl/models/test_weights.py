"""Time-decay sample weights (hand examples) and the point-in-time market-vol regime mask."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trademl.models.equities import market_vol_regime, time_decay_weights

SIX_MONTHS_H = np.timedelta64(4383, "h")  # 6 × 30.4375 days = 182.625 days, exactly


def test_half_life_hand_example_exact() -> None:
    """Ages 12, 6, 0 months at a 6-month half-life: raw 1/4, 1/2, 1 → mean-1 3/7, 6/7, 12/7."""
    ref = np.datetime64("2024-07-01T12", "h")
    sessions = np.array([ref - 2 * SIX_MONTHS_H, ref - SIX_MONTHS_H, ref])
    w = time_decay_weights(sessions, half_life_months=6.0)
    np.testing.assert_allclose(w, [3 / 7, 6 / 7, 12 / 7], rtol=1e-12)
    assert w[0] / w[1] == pytest.approx(0.5, rel=1e-12)
    assert w.mean() == pytest.approx(1.0, rel=1e-12)


def test_half_life_with_dates() -> None:
    """Plain dates: 182 days is 182/182.625 of a 6-month half-life."""
    sessions = [dt.date(2024, 1, 2), dt.date(2024, 7, 2), dt.date(2024, 7, 2)]
    w = time_decay_weights(sessions, half_life_months=6.0)
    ratio = 0.5 ** (182 / 182.625)  # = 0.50119 …
    np.testing.assert_allclose(w / w[-1], [ratio, 1.0, 1.0], rtol=1e-12)
    assert w.mean() == pytest.approx(1.0, rel=1e-12)
    assert w[0] == pytest.approx(3 * ratio / (ratio + 2), rel=1e-12)


def test_weights_are_monotone_in_recency_and_accept_polars() -> None:
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=7 * i) for i in range(100)]
    w = time_decay_weights(pl.Series("session", dates), half_life_months=12.0)
    assert np.all(np.diff(w) > 0)
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w, time_decay_weights(np.array(dates), half_life_months=12.0))
    dt64 = np.array(dates, dtype="datetime64[ns]")
    np.testing.assert_allclose(w, time_decay_weights(dt64, half_life_months=12.0))


def test_none_half_life_gives_ones_and_as_of_is_checked() -> None:
    dates = np.array(["2024-01-02", "2024-03-01", "2024-06-03"], dtype="datetime64[D]")
    assert np.array_equal(time_decay_weights(dates, half_life_months=None), np.ones(3))
    base = time_decay_weights(dates, half_life_months=3.0)
    later = time_decay_weights(dates, half_life_months=3.0, as_of=dt.date(2025, 1, 1))
    np.testing.assert_allclose(later, base, rtol=1e-10)  # normalization cancels the reference
    with pytest.raises(ValueError, match="look-ahead"):
        time_decay_weights(dates, half_life_months=3.0, as_of="2024-05-01")
    with pytest.raises(ValueError, match="positive"):
        time_decay_weights(dates, half_life_months=0.0)


# --- market-vol regime ----------------------------------------------------------------------


def regime_returns(seed: int = 0) -> np.ndarray:
    """Calm (1%), a turbulent burst (4%) at sessions 300–359, calm again, with one NaN."""
    rng = np.random.default_rng(seed)
    sigma = np.full(500, 0.01)
    sigma[300:360] = 0.04
    r = sigma * rng.normal(size=500)
    r[150] = np.nan
    return r


def reference_regime(r: np.ndarray, window: int, quantile: float, min_history: int) -> np.ndarray:
    """Brute force: trailing std vs np.quantile of all earlier finite vols."""
    vol = np.full(len(r), np.nan)
    for t in range(window - 1, len(r)):
        win = r[t - window + 1 : t + 1]
        if np.isfinite(win).all():
            vol[t] = np.std(win, ddof=1)
    out = np.zeros(len(r), dtype=bool)
    for t in range(len(r)):
        past = vol[:t][np.isfinite(vol[:t])]
        if np.isfinite(vol[t]) and len(past) >= min_history:
            out[t] = vol[t] > np.quantile(past, quantile)
    return out


def test_regime_flags_the_turbulent_burst() -> None:
    flags = market_vol_regime(regime_returns(), window=20, quantile=0.8, min_history=60)
    assert flags.dtype == bool and flags.shape == (500,)
    assert not flags[: 19 + 60].any()  # warm-up: 20-session window, then 60 earlier vols
    assert flags[310:360].mean() > 0.9
    assert flags[100:300].mean() < 0.4
    assert not flags[150:170].any()  # windows holding the missing return have no vol


def test_regime_matches_brute_force_reference() -> None:
    r = regime_returns(seed=1)
    for window, q, h in [(20, 0.8, 60), (5, 0.5, 1), (10, 0.95, 30)]:
        expected = reference_regime(r, window, q, h)
        got = market_vol_regime(r, window=window, quantile=q, min_history=h)
        assert np.array_equal(got, expected), (window, q, h)


def test_regime_is_point_in_time() -> None:
    """Appending later sessions, calm or wild, never changes an earlier flag."""
    r = regime_returns(seed=2)
    full = market_vol_regime(r)
    for cut in (90, 200, 310, 420):
        assert np.array_equal(market_vol_regime(r[:cut]), full[:cut]), cut
        wild = np.concatenate([r[:cut], 0.2 * np.random.default_rng(cut).normal(size=200)])
        flags = market_vol_regime(wild)
        assert np.array_equal(flags[:cut], full[:cut]), cut
        assert flags[cut + 25 :].any()  # the appended data does move later flags


def test_regime_frame_input_aligns_with_rows() -> None:
    r = regime_returns(seed=3)
    sessions = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + len(r))
    frame = pl.DataFrame({"session": sessions, "mkt_ret": r})
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=4)
    expected = market_vol_regime(r)
    assert np.array_equal(market_vol_regime(frame), expected)
    got = market_vol_regime(shuffled)
    order = np.argsort(shuffled["session"].to_numpy())
    assert np.array_equal(got[order], expected)
    with pytest.raises(ValueError, match="duplicate"):
        market_vol_regime(pl.concat([frame, frame.head(1)]))
