"""Forward-return labels: hand-computed values, execution lag, price field, t1 and output shape."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from trademl.config import LabelConfig
from trademl.labels import compute_labels, forward_returns, label_names

NAN = math.nan
OPEN = {  # two symbols, ten sessions; B has no bar at session 3
    "A": [100.0, 101.0, 102.0, 104.0, 108.0, 100.0, 90.0, 99.0, 100.0, 110.0],
    "B": [50.0, 55.0, 60.0, NAN, 44.0, 40.0, 50.0, 45.0, 60.0, 50.0],
}
CLOSE = {
    "A": [101.0, 103.0, 104.0, 106.0, 105.0, 95.0, 92.0, 100.0, 104.0, 111.0],
    "B": [52.0, 58.0, 59.0, NAN, 41.0, 42.0, 48.0, 50.0, 55.0, 52.0],
}


def weekdays(n: int, start: dt.date = dt.date(2024, 1, 1)) -> list[dt.date]:
    """`n` consecutive weekdays from `start` (a stand-in for an exchange calendar)."""
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


SESSIONS = weekdays(10)


def make_bars(
    opens: dict[str, list[float]], closes: dict[str, list[float]], sessions: list[dt.date]
) -> pl.DataFrame:
    """Long bars frame; a NaN open marks a missing bar (no row at all)."""
    rows = [
        {"date": d, "symbol": s, "open": o, "high": max(o, c), "low": min(o, c), "close": c}
        for s in opens
        for d, o, c in zip(sessions, opens[s], closes[s], strict=True)
        if not math.isnan(o)
    ]
    return (
        pl.DataFrame(rows)
        .with_columns(volume=pl.lit(1e6))
        .cast({"date": pl.Date, "open": pl.Float64, "close": pl.Float64, "volume": pl.Float64})
    )


def fwd_rows(out: pl.DataFrame, name: str) -> list[tuple[dt.date, str, dt.date, float]]:
    sub = out.filter(pl.col("name") == name)
    return list(zip(sub["date"], sub["symbol"], sub["t1"], sub["value"], strict=True))


def expected(
    prices: dict[str, list[float]], lag: int, k: int
) -> list[tuple[dt.date, str, dt.date, float]]:
    """Per-row statement of the definition: entry at t+lag, exit at t+lag+k, both present."""
    rows = []
    for s, p in prices.items():
        for t in range(len(SESSIONS)):
            i, j = t + lag, t + lag + k
            if j < len(SESSIONS) and not math.isnan(p[i]) and not math.isnan(p[j]):
                rows.append((SESSIONS[t], s, SESSIONS[j], p[j] / p[i] - 1.0))
    return sorted(rows, key=lambda r: (r[2], r[0], r[1]))


def assert_rows(got: list, want: list) -> None:
    assert [r[:3] for r in got] == [r[:3] for r in want]
    assert [r[3] for r in got] == pytest.approx([r[3] for r in want], rel=1e-12, abs=0)


def test_hand_computed_two_symbols_lag1() -> None:
    cfg = LabelConfig(horizon=2, execution_lag=1, price="open")
    got = fwd_rows(compute_labels(make_bars(OPEN, CLOSE, SESSIONS), SESSIONS, cfg), "fwd_ret_2")
    s = SESSIONS
    want = [  # (decision t, symbol, t1 = t+3, open[t+3]/open[t+1] − 1), sorted by t1
        (s[0], "A", s[3], 104 / 101 - 1),  # B t=0: exit bar (session 3) missing -> no row
        (s[1], "A", s[4], 108 / 102 - 1),
        (s[1], "B", s[4], 44 / 60 - 1),
        (s[2], "A", s[5], 100 / 104 - 1),  # B t=2: entry bar (session 3) missing -> no row
        (s[3], "A", s[6], 90 / 108 - 1),
        (s[3], "B", s[6], 50 / 44 - 1),
        (s[4], "A", s[7], 99 / 100 - 1),
        (s[4], "B", s[7], 45 / 40 - 1),
        (s[5], "A", s[8], 100 / 90 - 1),
        (s[5], "B", s[8], 60 / 50 - 1),
        (s[6], "A", s[9], 110 / 99 - 1),
        (s[6], "B", s[9], 50 / 45 - 1),
    ]
    assert_rows(got, want)


@pytest.mark.parametrize("lag", [0, 1, 2])
@pytest.mark.parametrize("price", ["open", "close"])
def test_execution_lag_and_price(lag: int, price: str) -> None:
    cfg = LabelConfig(horizon=2, execution_lag=lag, price=price)
    out = compute_labels(make_bars(OPEN, CLOSE, SESSIONS), SESSIONS, cfg)
    prices = OPEN if price == "open" else CLOSE
    assert_rows(fwd_rows(out, "fwd_ret_2"), expected(prices, lag, 2))


def test_lag_spot_values() -> None:
    """Independent spot checks that the lag moves both entry and exit (and t1)."""
    bars = make_bars(OPEN, CLOSE, SESSIONS)
    by_lag = {
        lag: compute_labels(bars, SESSIONS, LabelConfig(horizon=2, execution_lag=lag))
        .filter((pl.col("name") == "fwd_ret_2") & (pl.col("symbol") == "A"))
        .row(0, named=True)
        for lag in (0, 1, 2)
    }
    assert by_lag[0]["date"] == SESSIONS[0] and by_lag[0]["t1"] == SESSIONS[2]
    assert by_lag[0]["value"] == pytest.approx(102 / 100 - 1, rel=1e-12)
    assert by_lag[2]["t1"] == SESSIONS[4]
    assert by_lag[2]["value"] == pytest.approx(108 / 102 - 1, rel=1e-12)
    close_lag1 = compute_labels(bars, SESSIONS, LabelConfig(horizon=2, price="close"))
    row = close_lag1.filter(pl.col("name") == "fwd_ret_2").row(0, named=True)
    assert row["value"] == pytest.approx(106 / 103 - 1, rel=1e-12)


def test_forward_returns_matrix() -> None:
    p = np.array([[10.0, 20.0], [11.0, NAN], [12.0, 22.0], [13.0, 24.0]])
    value, t1 = forward_returns(p, horizon=1, lag=1)
    assert value.shape == t1.shape == (4, 2)
    np.testing.assert_allclose(value[:, 0], [12 / 11 - 1, 13 / 12 - 1, NAN, NAN], rtol=1e-12)
    np.testing.assert_allclose(value[:, 1], [NAN, 24 / 22 - 1, NAN, NAN], rtol=1e-12)
    assert t1.tolist() == [[2, -1], [3, 3], [-1, -1], [-1, -1]]


def test_schema_sort_and_names() -> None:
    cfg = LabelConfig(horizon=2, triple_barrier={"vol_window": 3, "max_holding": 3})
    out = compute_labels(make_bars(OPEN, CLOSE, SESSIONS), SESSIONS, cfg)
    assert out.schema == pl.Schema(
        {
            "date": pl.Date,
            "symbol": pl.String,
            "t1": pl.Date,
            "name": pl.String,
            "value": pl.Float64,
        }
    )
    assert out.equals(out.sort(["t1", "date", "symbol", "name"]))
    assert set(out["name"].unique()) == set(label_names(cfg))
    assert label_names(cfg) == ["fwd_ret_2", "tb_label", "tb_ret"]
    assert (out["t1"] > out["date"]).all()


def test_sessions_before_bars_and_empty() -> None:
    cfg = LabelConfig(horizon=2)
    bars = make_bars(OPEN, CLOSE, SESSIONS)
    longer = weekdays(15, dt.date(2023, 12, 25))  # five extra sessions before the bars
    assert longer[5:] == SESSIONS
    base, ext = compute_labels(bars, SESSIONS, cfg), compute_labels(bars, longer, cfg)
    assert ext.filter(pl.col("date") >= SESSIONS[0]).equals(base)
    # The only extra row: the decision at the last session before the bars, which trades at
    # the first bar's open (a decision session needs no bar of its own).
    extra = ext.filter(pl.col("date") < SESSIONS[0])
    assert extra.select("date", "symbol", "t1").rows() == [
        (longer[4], "A", SESSIONS[2]),
        (longer[4], "B", SESSIONS[2]),
    ]
    assert extra["value"].to_list() == pytest.approx([102 / 100 - 1, 60 / 50 - 1], rel=1e-12)
    empty = compute_labels(bars.head(0), SESSIONS, cfg)
    assert empty.height == 0 and empty.columns == ["date", "symbol", "t1", "name", "value"]


def test_rejects_bad_input() -> None:
    bars = make_bars(OPEN, CLOSE, SESSIONS)
    with pytest.raises(ValueError, match="not in the session list"):
        compute_labels(bars, SESSIONS[1:], LabelConfig())
    with pytest.raises(ValueError, match="more than one row"):
        compute_labels(pl.concat([bars, bars.head(1)]), SESSIONS, LabelConfig())
    with pytest.raises(ValueError, match="sorted"):
        compute_labels(bars, SESSIONS[::-1], LabelConfig())
