"""Hand-worked feature values on tiny constructed markets.

Every expected value is recomputed here with numpy from the raw closes/opens/volumes,
independently of the polars expressions in the registry.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from trademl.data.calendar import get_calendar
from trademl.features import build_features, feature_names

SESSIONS = get_calendar("XNYS", dt.date(2020, 1, 2)).sessions_in_range(
    dt.date(2023, 1, 3), dt.date(2024, 3, 15)
)
T = len(SESSIONS)
ANNUAL = math.sqrt(252.0)


def make_bars(
    closes: np.ndarray,
    symbols: list[str],
    *,
    opens: np.ndarray | None = None,
    volumes: np.ndarray | None = None,
    drop: set[tuple[int, int]] = frozenset(),
) -> pl.DataFrame:
    """Long bars from [T, N] arrays; (t, j) pairs in `drop` are missing bars."""
    opens = closes * 0.998 if opens is None else opens
    volumes = np.full(closes.shape, 1e5) if volumes is None else volumes
    rows = []
    for j, sym in enumerate(symbols):
        for t, d in enumerate(SESSIONS):
            if (t, j) in drop:
                continue
            o, c = float(opens[t, j]), float(closes[t, j])
            rows.append((d, sym, o, max(o, c) * 1.01, min(o, c) * 0.99, c, float(volumes[t, j])))
    return pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        },
        orient="row",
    )


def random_walk(seed: int, n: int, vol: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 40.0 * np.exp(np.cumsum(rng.normal(0.0, vol, (T, n)), axis=0))


def series(feats: pl.DataFrame, name: str, sym: str) -> np.ndarray:
    """Feature `name` of `sym` on the session grid; NaN where null or no row."""
    col = feats.filter(pl.col("symbol") == sym).select("date", name)
    grid = pl.DataFrame({"date": pl.Series(SESSIONS, dtype=pl.Date)})
    out = grid.join(col, on="date", how="left").get_column(name)
    return out.cast(pl.Float64).fill_null(np.nan).to_numpy()


def trailing(x: np.ndarray, t: int, w: int, min_obs: int, fn) -> float:
    """fn over the finite values of x[t-w+1 .. t] if at least min_obs of them, else NaN."""
    win = x[max(0, t - w + 1) : t + 1]
    win = win[np.isfinite(win)]
    return float(fn(win)) if win.size >= min_obs else np.nan


def build(bars: pl.DataFrame, *, cs: list[str] | None = None, ffill: int = 5) -> pl.DataFrame:
    return build_features(bars, SESSIONS, cross_sectional=cs or [], ffill_limit=ffill)


def close_allclose(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-13, equal_nan=True)


@pytest.fixture(scope="module")
def walk() -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame]:
    rng = np.random.default_rng(11)
    closes = random_walk(1, 3)
    opens = closes * np.exp(rng.normal(0.0, 0.01, closes.shape))
    volumes = rng.uniform(1e4, 1e6, closes.shape).round()
    bars = make_bars(closes, ["A", "B", "C"], opens=opens, volumes=volumes)
    return closes, opens, volumes, build(bars)


def test_enough_sessions_for_every_window() -> None:
    assert 290 <= T <= 320  # mom_12_1 needs > 252 sessions to produce values


@pytest.mark.parametrize("k", [5, 20, 60, 126])
def test_momentum_is_close_over_close_k_sessions_ago(walk, k: int) -> None:
    closes, _, _, feats = walk
    for j, sym in enumerate("ABC"):
        c = closes[:, j]
        expected = np.full(T, np.nan)
        expected[k:] = c[k:] / c[:-k] - 1.0
        close_allclose(series(feats, f"mom_{k}", sym), expected)


def test_mom_12_1_skips_the_last_month(walk) -> None:
    closes, _, _, feats = walk
    c = closes[:, 1]
    expected = np.full(T, np.nan)
    for t in range(252, T):
        expected[t] = c[t - 21] / c[t - 252] - 1.0
    got = series(feats, "mom_12_1", "B")
    close_allclose(got, expected)
    assert np.isfinite(got[252:]).all() and np.isnan(got[:252]).all()


def test_day_of_week_on_the_unit_circle(walk) -> None:
    feats = walk[3]
    monday, friday = dt.date(2023, 1, 9), dt.date(2023, 1, 13)
    assert monday.weekday() == 0 and friday.weekday() == 4
    row = feats.filter((pl.col("date") == monday) & (pl.col("symbol") == "A"))
    assert row.item(0, "dow_sin") == pytest.approx(0.0, abs=1e-15)
    assert row.item(0, "dow_cos") == pytest.approx(1.0, abs=1e-15)
    row = feats.filter((pl.col("date") == friday) & (pl.col("symbol") == "C"))
    assert row.item(0, "dow_sin") == pytest.approx(math.sin(8 * math.pi / 5), abs=1e-15)
    assert row.item(0, "dow_cos") == pytest.approx(math.cos(8 * math.pi / 5), abs=1e-15)
    # Five distinct weekdays map to five distinct points of the unit circle.
    pts = feats.select("dow_sin", "dow_cos").unique()
    assert pts.height == 5
    np.testing.assert_allclose(pts["dow_sin"] ** 2 + pts["dow_cos"] ** 2, 1.0, atol=1e-12)


@pytest.mark.parametrize("w", [20, 60])
def test_rvol_is_annualized_sample_std_of_log_returns(walk, w: int) -> None:
    closes, _, _, feats = walk
    c = closes[:, 2]
    r = np.full(T, np.nan)
    r[1:] = np.log(c[1:] / c[:-1])
    min_obs = math.ceil(0.75 * w)
    expected = np.array(
        [trailing(r, t, w, min_obs, lambda x: np.std(x, ddof=1)) * ANNUAL for t in range(T)]
    )
    got = series(feats, f"rvol_{w}", "C")
    close_allclose(got, expected)
    # First value once ceil(0.75 w) returns exist (returns start at session 1).
    assert np.isnan(got[min_obs - 1]) and np.isfinite(got[min_obs])


def test_close_z_and_bollinger_position(walk) -> None:
    closes, _, _, feats = walk
    c = closes[:, 0]
    mean = np.array([trailing(c, t, 20, 15, np.mean) for t in range(T)])
    std = np.array([trailing(c, t, 20, 15, lambda x: np.std(x, ddof=1)) for t in range(T)])
    z = series(feats, "close_z_20", "A")
    bb = series(feats, "bb_pos_20", "A")
    close_allclose(z, (c - mean) / std, rtol=1e-8)
    close_allclose(bb, (c - (mean - 2 * std)) / (4 * std), rtol=1e-8)
    assert np.isnan(z[13]) and np.isfinite(z[14])
    close_allclose(bb, 0.5 + z / 4, rtol=1e-8)


def test_drawdown_from_trailing_252_high(walk) -> None:
    closes, _, _, feats = walk
    c = closes[:, 1]
    expected = np.array([c[t] / trailing(c, t, 252, 60, np.max) - 1.0 for t in range(T)])
    got = series(feats, "dd_252", "B")
    close_allclose(got, expected)
    assert np.isnan(got[58]) and np.isfinite(got[59])
    assert np.nanmax(got) <= 0.0
    # Past session 252 the window slides: the high of the first sessions no longer counts.
    t = T - 1
    assert got[t] == pytest.approx(c[t] / c[t - 251 : t + 1].max() - 1.0, rel=1e-12)


def test_gap_is_log_open_over_previous_close(walk) -> None:
    closes, opens, _, feats = walk
    for j, sym in enumerate("ABC"):
        expected = np.full(T, np.nan)
        expected[1:] = np.log(opens[1:, j] / closes[:-1, j])
        close_allclose(series(feats, "gap_1", sym), expected)
        g = expected
        mean = np.array([trailing(g, t, 20, 15, np.mean) for t in range(T)])
        std = np.array([trailing(g, t, 20, 15, lambda x: np.std(x, ddof=1)) for t in range(T)])
        close_allclose(series(feats, "gap_mean_20", sym), mean, rtol=1e-8)
        close_allclose(series(feats, "gap_std_20", sym), std, rtol=1e-8)


def test_adv_and_dollar_volume(walk) -> None:
    closes, _, volumes, feats = walk
    v, c = volumes[:, 2], closes[:, 2]
    adv = np.array([trailing(v, t, 20, 15, np.mean) for t in range(T)])
    dollar = np.array([trailing(c * v, t, 20, 15, np.mean) for t in range(T)])
    close_allclose(series(feats, "adv_20", "C"), adv)
    close_allclose(series(feats, "dollar_vol_20", "C"), dollar)


def test_beta_of_a_name_moving_twice_the_equal_weight_market() -> None:
    """rA = 2(rB + rC) makes the equal-weight market (rA + rB + rC)/3 = rB + rC, so βA = 2."""
    rng = np.random.default_rng(5)
    rb, rc = rng.normal(0.0, 0.01, T), rng.normal(0.0, 0.012, T)
    ra = 2.0 * (rb + rc)
    logp = np.cumsum(np.stack([ra, rb, rc], axis=1), axis=0) + math.log(30.0)
    feats = build(make_bars(np.exp(logp), ["A", "B", "C"]))
    beta_a = series(feats, "beta_60", "A")
    # 45 = ceil(0.75·60) returns are needed; returns start at session 1.
    assert np.isnan(beta_a[:45]).all() and np.isfinite(beta_a[45:]).all()
    np.testing.assert_allclose(beta_a[45:], 2.0, atol=1e-9)
    # The others: OLS slope on the market over the same trailing window.
    mkt = rb + rc
    for sym, r in (("B", rb), ("C", rc)):
        expected = np.full(T, np.nan)
        for t in range(45, T):
            x, y = r[max(1, t - 59) : t + 1], mkt[max(1, t - 59) : t + 1]
            expected[t] = np.cov(x, y)[0, 1] / np.var(y, ddof=1)
        close_allclose(series(feats, "beta_60", sym), expected, rtol=1e-7)
    # Equal-weight betas average to exactly one.
    avg = feats.group_by("date").agg(pl.col("beta_60").mean()).drop_nulls()
    np.testing.assert_allclose(avg["beta_60"], 1.0, atol=1e-9)


def test_market_regime_vol_is_the_equal_weight_market_realized_vol(walk) -> None:
    """mkt_rvol_20: annualized sample std of the mean log return over 20 sessions, per session."""
    closes, _, _, feats = walk
    mkt = np.full(T, np.nan)
    mkt[1:] = np.log(closes[1:] / closes[:-1]).mean(axis=1)
    expected = np.array([trailing(mkt, t, 20, 15, lambda x: np.std(x, ddof=1)) for t in range(T)])
    for sym in ("A", "B", "C"):  # the same regime value for every name of a session
        close_allclose(series(feats, "mkt_rvol_20", sym), expected * ANNUAL, rtol=1e-9)


def test_cross_sectional_rank_and_z_score() -> None:
    cs = ["mom_5", "rvol_20", "beta_60"]
    feats = build(make_bars(random_walk(3, 8), [f"S{i}" for i in range(8)]), cs=cs)
    assert feats.columns == ["date", "symbol", *feature_names(cs)]
    checked = 0
    for (_,), day in feats.group_by("date"):
        for name in cs:
            base = day.get_column(name).to_numpy().astype(float)
            rank = day.get_column(f"xs_rank_{name}").to_numpy().astype(float)
            z = day.get_column(f"xs_z_{name}").to_numpy().astype(float)
            ok = np.isfinite(base)
            assert (np.isfinite(rank) == ok).all()
            if ok.sum() < 2:
                continue
            b, rk, zz = base[ok], rank[ok], z[ok]
            assert ((rk > 0) & (rk <= 1)).all() and rk.max() == 1.0
            expected_rank = (np.argsort(np.argsort(b)) + 1) / b.size  # no ties in a random walk
            np.testing.assert_allclose(rk, expected_rank, rtol=1e-12)
            np.testing.assert_allclose(zz, (b - b.mean()) / b.std(ddof=1), rtol=1e-9, atol=1e-12)
            assert abs(zz.mean()) < 1e-12 and zz.std(ddof=1) == pytest.approx(1.0, rel=1e-12)
            checked += 1
    assert checked > 2 * (T - 70)


def test_cross_sectional_rank_averages_ties() -> None:
    t = np.arange(T)[:, None]
    closes = 100.0 * np.hstack([1.01**t, 1.01**t, 1.005**t, 0.99**t])
    feats = build(make_bars(closes, ["A", "B", "C", "D"]), cs=["mom_5"])
    day = feats.filter(pl.col("date") == SESSIONS[100]).sort("symbol")
    assert day["xs_rank_mom_5"].to_list() == [0.875, 0.875, 0.5, 0.25]
    v = np.array([1.01**5, 1.01**5, 1.005**5, 0.99**5]) - 1.0
    np.testing.assert_allclose(day["xs_z_mom_5"], (v - v.mean()) / v.std(ddof=1), rtol=1e-9)


def test_missing_bar_emits_no_row_and_the_next_return_spans_two_sessions() -> None:
    m = 150
    rng = np.random.default_rng(9)
    closes = random_walk(4, 3)
    opens = closes * np.exp(rng.normal(0.0, 0.01, closes.shape))
    feats = build(make_bars(closes, ["A", "B", "C"], opens=opens, drop={(m, 1)}))
    assert feats.height == 3 * T - 1
    assert feats.filter((pl.col("date") == SESSIONS[m]) & (pl.col("symbol") == "B")).is_empty()
    c, o = closes[:, 1], opens[:, 1]
    gap = series(feats, "gap_1", "B")
    assert gap[m + 1] == pytest.approx(math.log(o[m + 1] / c[m - 1]), rel=1e-12)
    mom = series(feats, "mom_5", "B")
    assert mom[m + 4] == pytest.approx(c[m + 4] / c[m - 1] - 1.0, rel=1e-12)
    assert mom[m + 5] == pytest.approx(c[m + 5] / c[m - 1] - 1.0, rel=1e-12)  # forward-filled
    assert mom[m + 6] == pytest.approx(c[m + 6] / c[m + 1] - 1.0, rel=1e-12)
    # rvol_20 at m+5: 19 returns, the one at m+1 spanning sessions m-1 → m+1.
    r = np.full(T, np.nan)
    r[1:] = np.log(c[1:] / c[:-1])
    r[m] = np.nan
    r[m + 1] = math.log(c[m + 1] / c[m - 1])
    window = r[m + 5 - 19 : m + 6]
    assert np.isfinite(window).sum() == 19
    expected = np.std(window[np.isfinite(window)], ddof=1) * ANNUAL
    assert series(feats, "rvol_20", "B")[m + 5] == pytest.approx(expected, rel=1e-9)
    # The market return of session m averages only the names that traded.
    ra, rc = (np.log(closes[1:, j] / closes[:-1, j]) for j in (0, 2))
    mkt = np.concatenate([[np.nan], (ra + rc + np.r_[r[1:]]) / 3])
    mkt[m] = (ra[m - 1] + rc[m - 1]) / 2
    t = m + 20
    x = np.concatenate([[np.nan], ra])[t - 59 : t + 1]
    y = mkt[t - 59 : t + 1]
    expected_beta = np.cov(x, y)[0, 1] / np.var(y, ddof=1)
    assert series(feats, "beta_60", "A")[t] == pytest.approx(expected_beta, rel=1e-8)


@pytest.mark.parametrize(
    ("ffill", "n_missing"), [(2, 1), (2, 2), (2, 3), (2, 7), (0, 1), (5, 5), (5, 6)]
)
def test_forward_fill_limit(ffill: int, n_missing: int) -> None:
    m, sym = 120, 1
    rng = np.random.default_rng(2)
    closes = random_walk(6, 2)
    opens = closes * np.exp(rng.normal(0.0, 0.01, closes.shape))
    drop = {(m + i, sym) for i in range(n_missing)}
    feats = build(make_bars(closes, ["A", "B"], opens=opens, drop=drop), ffill=ffill)
    c, o = closes[:, sym], opens[:, sym]
    back = m + n_missing  # first session with a bar again
    gap, mom = series(feats, "gap_1", "B"), series(feats, "mom_5", "B")
    assert np.isnan(gap[m:back]).all() and np.isnan(mom[m:back]).all()  # no rows
    s = back - 1 + 5  # mom_5 here reads the close of the last missing session
    if n_missing <= ffill:
        assert gap[back] == pytest.approx(math.log(o[back] / c[m - 1]), rel=1e-12)
        assert mom[s] == pytest.approx(c[s] / c[m - 1] - 1.0, rel=1e-12)
    else:
        assert np.isnan(gap[back])
        assert np.isnan(mom[s])
    # One session later it reads a real bar again.
    assert mom[s + 1] == pytest.approx(c[s + 1] / c[back] - 1.0, rel=1e-12)
    # The other name is untouched.
    ca = closes[:, 0]
    np.testing.assert_allclose(series(feats, "mom_5", "A")[5:], ca[5:] / ca[:-5] - 1, rtol=1e-12)


def test_duplicate_bar_raises_naming_it() -> None:
    bars = make_bars(random_walk(1, 2), ["A", "B"])
    dup = bars.filter((pl.col("date") == SESSIONS[10]) & (pl.col("symbol") == "B"))
    with pytest.raises(ValueError, match=rf"duplicate.*{SESSIONS[10].isoformat()} B"):
        build(pl.concat([bars, dup]))


def test_rows_outside_the_session_range_are_ignored() -> None:
    bars = make_bars(random_walk(1, 2), ["A", "B"])
    junk = bars.head(3).with_columns(
        pl.col("date") - pl.duration(days=3650), pl.lit(-1.0).alias("close")
    )
    junk = pl.concat([junk, junk])  # even duplicated and with bad prices
    assert build(pl.concat([junk, bars])).equals(build(bars))


@pytest.mark.parametrize("col", ["open", "volume", "symbol"])
def test_missing_column_raises(col: str) -> None:
    bars = make_bars(random_walk(1, 2), ["A", "B"]).drop(col)
    with pytest.raises(ValueError, match=col):
        build(bars)


def test_no_sessions_or_unknown_cross_sectional_feature_raises() -> None:
    bars = make_bars(random_walk(1, 2), ["A", "B"])
    with pytest.raises(ValueError, match="at least one session"):
        build_features(bars, [], cross_sectional=[])
    with pytest.raises(ValueError, match="mom_7"):
        build(bars, cs=["mom_7"])
