"""Point-in-time: a label known at t1 never changes when later bars arrive or change."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trademl.config import LabelConfig
from trademl.labels import compute_labels


def weekdays(n: int) -> list[dt.date]:
    d, out = dt.date(2023, 1, 2), []
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def random_bars(
    seed: int, n_sym: int, t_len: int, missing: float, sessions: list[dt.date]
) -> pl.DataFrame:
    """Random-walk bars; each (session, symbol) bar is dropped with probability `missing`."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (t_len, n_sym)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, (t_len, n_sym)))
    t_idx, s_idx = np.nonzero(rng.random((t_len, n_sym)) >= missing)
    o, c = open_[t_idx, s_idx], close[t_idx, s_idx]
    return pl.DataFrame(
        {
            "date": pl.Series(sessions, dtype=pl.Date).gather(t_idx),
            "symbol": [f"S{j:02d}" for j in s_idx],
            "open": o,
            "high": np.maximum(o, c) * 1.01,
            "low": np.minimum(o, c) * 0.99,
            "close": c,
            "volume": rng.uniform(1e5, 1e6, o.size),
        }
    )


def small_cfg(lag: int, price: str, vertical: str) -> LabelConfig:
    """Short windows so a few dozen sessions hold many labels of every kind."""
    tb = {"tp": 1.5, "sl": 1.0, "max_holding": 6, "vol_window": 5, "vertical_label": vertical}
    return LabelConfig(horizon=3, execution_lag=lag, price=price, triple_barrier=tb)


def upto(bars: pl.DataFrame, sessions: list[dt.date], i: int) -> tuple[pl.DataFrame, list[dt.date]]:
    """Bars and sessions as they stand at the close of session index i."""
    i = min(i, len(sessions) - 1)
    return bars.filter(pl.col("date") <= sessions[i]), sessions[: i + 1]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sym=st.integers(2, 5),
    t_len=st.integers(20, 70),
    missing=st.sampled_from([0.0, 0.05, 0.2, 0.4]),
    d_frac=st.floats(0.2, 1.0),  # mostly past the warm-up, so rows exist to compare
    lag=st.integers(0, 2),
    price=st.sampled_from(["open", "close"]),
    vertical=st.sampled_from(["sign", "zero"]),
)
def test_rows_known_by_d_do_not_change(
    seed: int,
    n_sym: int,
    t_len: int,
    missing: float,
    d_frac: float,
    lag: int,
    price: str,
    vertical: str,
) -> None:
    sessions = weekdays(t_len)
    bars = random_bars(seed, n_sym, t_len, missing, sessions)
    # "Bars end at d": d is a session holding at least one bar (sessions with no bar at all
    # after the last bar count as data not yet arrived, not as missing bars).
    with_bars = sorted({sessions.index(x) for x in bars["date"].unique()})
    d = with_bars[int(d_frac * (len(with_bars) - 1))] if with_bars else 0
    cfg = small_cfg(lag, price, vertical)
    outs = [compute_labels(*upto(bars, sessions, d + extra), cfg) for extra in (0, 5, 100)]
    known = [out.filter(pl.col("t1") <= sessions[d]) for out in outs]
    assert outs[0].equals(known[0])  # nothing past d can be emitted from bars ending at d
    assert known[0].equals(known[1])
    assert known[0].equals(known[2])


def test_calendar_running_ahead_of_the_data_adds_nothing() -> None:
    sessions = weekdays(60)
    bars = random_bars(3, 4, 40, 0.1, sessions[:40])
    cfg = small_cfg(1, "open", "sign")
    base = compute_labels(bars, sessions[:40], cfg)
    assert base.height > 100
    assert compute_labels(bars, sessions, cfg).equals(base)


@pytest.mark.parametrize("seed", [0, 1])
def test_no_look_ahead(seed: int) -> None:
    """Scramble every bar after session s: no row with t1 < s may change; rows after may."""
    sessions = weekdays(60)
    bars = random_bars(seed, 4, 60, 0.1, sessions)
    cfg = small_cfg(1, "open", "sign")
    base = compute_labels(bars, sessions, cfg)
    s = sessions[35]
    rng = np.random.default_rng(seed + 100)
    later = pl.col("date") >= s
    noise = pl.Series(rng.uniform(0.5, 2.0, bars.height))
    changed = bars.with_columns(
        [pl.when(later).then(pl.col(c) * noise).otherwise(pl.col(c)) for c in ("open", "close")]
    )
    after = compute_labels(changed, sessions, cfg)
    assert after.filter(pl.col("t1") < s).equals(base.filter(pl.col("t1") < s))
    assert not after.filter(pl.col("t1") >= s).equals(base.filter(pl.col("t1") >= s))


@pytest.mark.parametrize("name", ["fwd_ret_3", "tb_ret"])
def test_changing_bar_after_t1_keeps_that_label(name: str) -> None:
    """Targeted: moving the symbol's bars right after t1 keeps the value; moving t1's does not."""
    sessions = weekdays(40)
    bars = random_bars(7, 3, 40, 0.0, sessions)
    cfg = small_cfg(1, "close", "sign")
    base = compute_labels(bars, sessions, cfg)
    row = base.filter((pl.col("name") == name) & (pl.col("t1") < sessions[-2])).row(10, named=True)

    def value_after_bumping(day: dt.date) -> float:
        hit = (pl.col("symbol") == row["symbol"]) & (pl.col("date") == day)
        bumped = bars.with_columns(
            [pl.when(hit).then(pl.col(c) * 1.5).otherwise(pl.col(c)) for c in ("open", "close")]
        )
        out = compute_labels(bumped, sessions, cfg).filter(
            (pl.col("name") == name)
            & (pl.col("symbol") == row["symbol"])
            & (pl.col("date") == row["date"])
        )
        return out["value"].item() if out.height else float("nan")

    next_day = sessions[sessions.index(row["t1"]) + 1]
    assert value_after_bumping(next_day) == row["value"]
    assert value_after_bumping(row["t1"]) != row["value"]  # the test can see a change
