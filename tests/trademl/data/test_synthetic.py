"""The synthetic market: deterministic, point-in-time, realistic, and its planted alpha is real.

The planted-signal check measures the IC the way a researcher would: the registry feature
`mom_20` from `build_features` against the `fwd_ret_5` label from `compute_labels`.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import rankdata

from trademl.config import LabelConfig
from trademl.data import synthetic
from trademl.data.calendar import get_calendar
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
from trademl.features import build_features
from trademl.labels import compute_labels

CAL = get_calendar("XNYS", dt.date(2020, 1, 2))
START = dt.date(2021, 1, 4)
SESSIONS = CAL.sessions_in_range(START, dt.date(2030, 1, 1))[:600]
N_SYM = 50
TARGET_IC = 0.1
HORIZON = LabelConfig().horizon


def market(seed: int = 3, mode: str = "planted", **kw) -> SyntheticMarket:
    spec = SyntheticSpec(
        n_symbols=kw.pop("n_symbols", N_SYM),
        seed=seed,
        start=START,
        alpha_mode=mode,
        target_ic=TARGET_IC,
        **kw,
    )
    return SyntheticMarket(spec, CAL)


def on_grid(bars: pl.DataFrame, field: str) -> np.ndarray:
    """[T, N] matrix of `field` on the session × symbol grid (NaN for a missing bar)."""
    symbols = bars.select(pl.col("symbol").unique().sort())
    grid = pl.DataFrame({"date": pl.Series(SESSIONS, dtype=pl.Date)}).join(symbols, how="cross")
    grid = grid.join(bars, on=["date", "symbol"], how="left").sort("date", "symbol")
    return grid.get_column(field).fill_null(np.nan).to_numpy().reshape(len(SESSIONS), -1)


def newey_west_se(x: np.ndarray, lags: int) -> float:
    """HAC standard error of the mean of a serially correlated series (Bartlett weights)."""
    e = x - x.mean()
    var = e @ e / x.size
    for lag in range(1, lags + 1):
        var += 2 * (1 - lag / (lags + 1)) * (e[lag:] @ e[:-lag]) / x.size
    return math.sqrt(var / x.size)


def session_ics(mkt: SyntheticMarket) -> np.ndarray:
    """Per-session Spearman IC of mom_20 (registry) vs fwd_ret_5 (labels)."""
    bars = mkt.load(end=SESSIONS[-1])
    feats = build_features(bars, SESSIONS, cross_sectional=[]).select("date", "symbol", "mom_20")
    labels = compute_labels(bars, SESSIONS, LabelConfig()).filter(
        pl.col("name") == f"fwd_ret_{HORIZON}"
    )
    both = feats.join(labels.select("date", "symbol", "value"), on=["date", "symbol"])
    both = both.drop_nulls().sort("date", "symbol")
    ics = []
    for _, day in both.group_by("date", maintain_order=True):
        assert day.height >= N_SYM - 5
        ics.append(np.corrcoef(rankdata(day["mom_20"]), rankdata(day["value"]))[0, 1])
    return np.array(ics)


@pytest.fixture(scope="module")
def planted() -> tuple[SyntheticMarket, pl.DataFrame]:
    mkt = market()
    return mkt, mkt.load(end=SESSIONS[-1])


# --- determinism and point-in-time -----------------------------------------------------------


def test_same_seed_same_bars_different_seed_different_bars() -> None:
    end = SESSIONS[299]
    a = market(seed=21, n_symbols=20).load(end=end)
    synthetic._generate.cache_clear()  # regenerate rather than hit the cache
    b = market(seed=21, n_symbols=20).load(end=end)
    c = market(seed=22, n_symbols=20).load(end=end)
    assert a is not b and a.equals(b)
    assert not a.equals(c)
    assert a.select("date", "symbol").height > 0


@pytest.mark.parametrize("i", [10, 200, 255, 400])
def test_history_is_a_prefix_whatever_the_end(i: int) -> None:
    """Bars up to d are the same whether the market is drawn to d or 100 sessions later."""
    mkt = market(seed=4, n_symbols=20, missing_bar_rate=0.01)
    d = SESSIONS[i]
    short = mkt.load(end=d)
    long = mkt.load(end=SESSIONS[i + 100]).filter(pl.col("date") <= d)
    assert short["date"].max() == d
    assert short.equals(long)
    truth = mkt.ground_truth(end=d)
    assert truth["last_session"] == str(d) and truth["first_session"] == str(SESSIONS[0])


def test_load_start_filters_rows(planted) -> None:
    mkt, bars = planted
    part = mkt.load(start=SESSIONS[100], end=SESSIONS[-1])
    assert part.equals(bars.filter(pl.col("date") >= SESSIONS[100]))


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="alpha mode"):
        SyntheticSpec(alpha_mode="strong")
    with pytest.raises(ValueError, match="mom_20"):
        SyntheticSpec(alpha_feature="mom_5")
    with pytest.raises(ValueError, match="at least 2"):
        SyntheticSpec(n_symbols=1)
    assert SyntheticSpec(alpha_mode="noise", target_ic=0.1).drift_coef == 0.0
    assert SyntheticSpec(target_ic=0.0).drift_coef == 0.0
    assert SyntheticSpec(target_ic=0.1).drift_coef > SyntheticSpec(target_ic=0.05).drift_coef > 0


# --- structure ---------------------------------------------------------------------------------


def test_schema_symbols_and_sessions(planted) -> None:
    _, bars = planted
    assert bars.columns == ["date", "symbol", "open", "high", "low", "close", "volume"]
    assert bars.schema["date"] == pl.Date and bars.schema["symbol"] == pl.String
    assert sorted(bars["symbol"].unique()) == [f"S{i:04d}" for i in range(1, N_SYM + 1)]
    assert set(bars["date"].unique()) == set(SESSIONS)
    assert bars.select("date", "symbol").is_unique().all()


def test_ohlc_consistent_and_positive(planted) -> None:
    _, bars = planted
    bad = bars.filter(
        (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.min_horizontal("open", "high", "low", "close") <= 0)
        | (pl.col("volume") <= 0)
    )
    assert bad.is_empty(), bad.head()
    assert bars.select(pl.all().is_null().any()).row(0) == (False,) * 7
    # The intraday range is real: high > low on almost every bar.
    assert (bars["high"] > bars["low"]).mean() > 0.99


def test_fat_tails_and_volatility_clustering(planted) -> None:
    _, bars = planted
    r = np.diff(np.log(on_grid(bars, "close")), axis=0)
    z = r / np.nanstd(r, axis=0, ddof=1)  # each name in units of its own vol
    pooled = z[np.isfinite(z)]
    excess_kurtosis = np.mean((pooled - pooled.mean()) ** 4) / np.var(pooled) ** 2 - 3
    assert excess_kurtosis > 1.0
    a = np.abs(z) - np.nanmean(np.abs(z), axis=0)  # |ret|, demeaned per name
    x, y = a[1:].ravel(), a[:-1].ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    acf1 = np.sum(x[ok] * y[ok]) / math.sqrt(np.sum(x[ok] ** 2) * np.sum(y[ok] ** 2))
    assert acf1 > 0.05
    # Signed returns, by contrast, are close to serially uncorrelated.
    s = z - np.nanmean(z, axis=0)
    x, y = s[1:].ravel(), s[:-1].ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    assert abs(np.sum(x[ok] * y[ok]) / math.sqrt(np.sum(x[ok] ** 2) * np.sum(y[ok] ** 2))) < 0.05


def test_some_missing_bars_but_few(planted) -> None:
    _, bars = planted
    missing = 1 - bars.height / (len(SESSIONS) * N_SYM)
    assert 0 < missing < 0.01
    full = market(seed=3, n_symbols=10, missing_bar_rate=0.0).load(end=SESSIONS[99])
    assert full.height == 100 * 10


def test_adv_dispersion_across_names(planted) -> None:
    _, bars = planted
    adv = bars.group_by("symbol").agg(pl.col("volume").mean())["volume"]
    assert adv.max() / adv.min() > 5


def test_volume_rises_with_the_size_of_the_move(planted) -> None:
    _, bars = planted
    r = np.abs(np.diff(np.log(on_grid(bars, "close")), axis=0))
    v = np.log(on_grid(bars, "volume"))[1:]
    r, v = r - np.nanmean(r, axis=0), v - np.nanmean(v, axis=0)
    ok = np.isfinite(r) & np.isfinite(v)
    assert np.corrcoef(r[ok], v[ok])[0, 1] > 0.1


# --- the planted alpha -------------------------------------------------------------------------


def test_planted_signal_has_the_target_ic(planted) -> None:
    mkt, _ = planted
    ics = session_ics(mkt)
    assert ics.size == len(SESSIONS) - 20 - HORIZON - 1  # mom_20 from 20, label until T-7
    mean = ics.mean()
    se = newey_west_se(ics, lags=20)  # overlapping labels, persistent signal
    assert 0.6 * TARGET_IC < mean < 1.4 * TARGET_IC, mean
    assert mean / se > 3, (mean, se)
    truth = mkt.ground_truth(end=SESSIONS[-1])
    assert truth["alpha_mode"] == "planted" and truth["target_ic"] == TARGET_IC
    assert truth["realized_sessions"] == ics.size
    # Same sessions, same ranks up to the 0.2% missing bars.
    assert truth["realized_rank_ic"] == pytest.approx(mean, abs=0.005)


def test_noise_mode_has_no_signal() -> None:
    mkt = market(mode="noise")
    ics = session_ics(mkt)
    mean, se = ics.mean(), newey_west_se(ics, lags=20)
    assert abs(mean) < 2 * se, (mean, se)
    assert abs(mean) < 0.4 * TARGET_IC
    truth = mkt.ground_truth(end=SESSIONS[-1])
    assert truth["drift_coef"] == 0.0
    assert truth["realized_rank_ic"] == pytest.approx(mean, abs=0.005)


@pytest.mark.parametrize("kw", [{}, {"reversal_ic": 0.05}, {"mode": "noise"}])
def test_the_market_kept_on_disk_is_the_market_regenerated(tmp_path, kw) -> None:
    """A cache folder extended session by session (and read back in windows) gives exactly
    the bars and ground truth a fresh generation of the whole history gives."""
    from polars.testing import assert_frame_equal

    from trademl.data.synthetic_cache import market_folder

    mode = kw.pop("mode", "planted")
    fresh = market(seed=9, mode=mode, **kw)
    kept = SyntheticMarket(fresh.spec, CAL, cache_dir=str(tmp_path))
    ends = [SESSIONS[40], SESSIONS[41], SESSIONS[300], SESSIONS[599]]
    for end in ends:  # a first day, one more session, then two jumps
        synthetic._generate.cache_clear()
        assert_frame_equal(kept.load(end=end), fresh.load(end=end))
        want = {k: str(v) for k, v in fresh.ground_truth(end).items()}
        assert {k: str(v) for k, v in kept.ground_truth(end).items()} == want
    folder = market_folder(kept, tmp_path)
    assert len(list(folder.glob("bars-*.parquet"))) == len(ends)  # one chunk per extension
    # an earlier end and a window are served from the folder, without simulating again
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    window = kept.load(SESSIONS[290], SESSIONS[310])
    assert_frame_equal(window, fresh.load(SESSIONS[290], SESSIONS[310]))
    assert_frame_equal(kept.load(end=SESSIONS[100]), fresh.load(end=SESSIONS[100]))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    # another spec gets another folder
    other = SyntheticMarket(market(seed=10).spec, CAL, cache_dir=str(tmp_path))
    assert market_folder(other, tmp_path) != folder
