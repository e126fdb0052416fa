"""Triple-barrier labels against hand-worked AFML (ch. 3) paths and a per-row reference."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import polars as pl
import pytest

from trademl.config import LabelConfig
from trademl.labels import compute_labels, triple_barrier_matrix

NAN = math.nan
# Decision t=0, lag 1: entry = entry[1] = 100, path = close[1..5] (max_holding 5), τ_v = 5.
# σ_0 = 0.03125 = 2**-5, tp 2, sl 1: upper barrier 106.25, lower 96.875 (all exact floats).
SIGMA = 0.03125
PATHS = {  # name: (close[1..5], label, tb_ret, t1)
    "upper": ([101.0, 103.0, 107.0, 95.0, 100.0], 1.0, 0.07, 3),
    "lower_then_upper": ([99.0, 96.5, 110.0, 100.0, 100.0], -1.0, -0.035, 2),
    "entry_day_touch": ([107.5, 90.0, 100.0, 100.0, 100.0], 1.0, 0.075, 1),
    "equal_then_touch": ([106.25, 96.875, 100.0, 106.5, 90.0], 1.0, 0.065, 4),
    "equal_only": ([106.25, 96.875, 106.25, 96.875, 106.25], 1.0, 0.0625, 5),
    "vertical_up": ([101.0, 102.0, 99.0, 103.0, 104.0], 1.0, 0.04, 5),
    "vertical_down": ([99.0, 98.0, 101.0, 97.5, 98.0], -1.0, -0.02, 5),
    "vertical_missing_last": ([101.0, NAN, 103.0, 102.0, NAN], 1.0, 0.02, 5),
    "missing_close_skipped": ([101.0, NAN, 96.0, 120.0, 100.0], -1.0, -0.04, 3),
}


def run_matrix(
    paths: dict, vertical_label: str = "sign", lag: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t_len, n = 8, len(paths)
    close = np.full((t_len, n), 100.0)
    close[6:] = 1000.0  # far beyond both barriers, but after τ_v: must not matter
    for j, (path, *_) in enumerate(paths.values()):
        close[1:6, j] = path
    entry = np.full((t_len, n), 100.0)
    sigma = np.full((t_len, n), NAN)
    sigma[0] = SIGMA
    return triple_barrier_matrix(
        entry, close, sigma, tp=2.0, sl=1.0, max_holding=5, lag=lag, vertical_label=vertical_label
    )


@pytest.mark.parametrize("vertical_label", ["sign", "zero"])
def test_hand_worked_paths(vertical_label: str) -> None:
    label, ret, t1 = run_matrix(PATHS, vertical_label)
    for j, (name, (_, want_label, want_ret, want_t1)) in enumerate(PATHS.items()):
        if vertical_label == "zero" and want_t1 == 5:  # no touch: vertical barrier decides
            want_label = 0.0
        assert label[0, j] == want_label, name
        assert ret[0, j] == pytest.approx(want_ret, rel=1e-12, abs=1e-15), name
        assert t1[0, j] == want_t1, name
    assert np.isnan(label[1:]).all() and np.isnan(ret[1:]).all() and (t1[1:] == -1).all()


def test_return_exactly_on_barrier_is_not_a_touch() -> None:
    """106.25/100 − 1 == 2σ and 96.875/100 − 1 == −σ exactly; only a strict cross counts."""
    assert 2 * SIGMA == 106.25 / 100 - 1 and -SIGMA == 96.875 / 100 - 1
    label, _, t1 = run_matrix({"x": PATHS["equal_only"]})
    assert t1[0, 0] == 5  # vertical barrier, not a touch on day 1
    label, _, t1 = run_matrix({"x": ([106.25, 106.25 + 2**-40, 0, 0, 0], 0, 0, 0)})
    assert (label[0, 0], t1[0, 0]) == (1.0, 2)  # the tiniest representable step above counts
    label, _, t1 = run_matrix({"x": ([96.875, 96.875 - 2**-40, 0, 0, 0], 0, 0, 0)})
    assert (label[0, 0], t1[0, 0]) == (-1.0, 2)


def test_missing_inputs_and_pit() -> None:
    t_len = 8
    entry = np.full((t_len, 5), 100.0)
    close = np.full((t_len, 5), 100.0)  # col 4 stays flat: never touches
    sigma = np.full((t_len, 5), SIGMA)
    entry[1, 0] = NAN  # col 0: entry bar missing -> decision 0 has no label
    sigma[0, 1] = NAN  # col 1: σ unavailable -> no label
    close[1:6, 2] = NAN  # col 2: no close observed on the whole path -> no label
    close[7, 3] = 110.0  # col 3: upper touch at the last session of the grid
    label, ret, t1 = triple_barrier_matrix(
        entry, close, sigma, tp=2.0, sl=1.0, max_holding=5, lag=1, vertical_label="sign"
    )
    assert np.isnan(label[0, :3]).all() and (t1[0, :3] == -1).all()
    # Col 3 is flat but for close[7] = 110: decisions 0, 1 end at the vertical barrier
    # (τ_v = t+5) with ret 0; decisions 2..6 see the touch at 7 — for 3..6 before their τ_v,
    # which lies past the grid (a touch is final, so it may be emitted already).
    assert label[:2, 3].tolist() == [0.0, 0.0] and t1[:2, 3].tolist() == [5, 6]
    assert label[2:7, 3].tolist() == [1.0] * 5 and t1[2:7, 3].tolist() == [7] * 5
    assert np.isnan(label[7, 3]) and t1[7, 3] == -1  # entry would be at session 8
    # Col 4: no touch; τ_v = t+5 must be inside the grid, so decisions 3.. have no label yet.
    assert t1[:, 4].tolist() == [5, 6, 7, -1, -1, -1, -1, -1]
    assert label[:3, 4].tolist() == [0.0] * 3 and np.isnan(label[3:, 4]).all()
    assert ret[3, 3] == pytest.approx(0.1, rel=1e-12)


def test_execution_lag_moves_entry() -> None:
    """Decision 0: lag 0 enters at entry[0] = 100, lag 1 at entry[1] = 104 (upper 110.5)."""
    entry = np.array([[100.0], [104.0], [104.0], [104.0]])
    close = np.array([[100.0], [107.0], [100.0], [100.0]])
    sigma = np.array([[SIGMA], [NAN], [NAN], [NAN]])
    kw = {"tp": 2.0, "sl": 1.0, "max_holding": 2, "vertical_label": "sign"}
    label, ret, t1 = triple_barrier_matrix(entry, close, sigma, lag=0, **kw)
    assert (label[0, 0], t1[0, 0]) == (1.0, 1) and ret[0, 0] == pytest.approx(0.07)
    label, ret, t1 = triple_barrier_matrix(entry, close, sigma, lag=1, **kw)
    # path close[1..2] = 107, 100 vs entry 104: 100 < 104 − 3.25 = 100.75 -> lower at 2
    assert (label[0, 0], t1[0, 0]) == (-1.0, 2) and ret[0, 0] == pytest.approx(100 / 104 - 1)


def weekdays(n: int) -> list[dt.date]:
    d, out = dt.date(2024, 1, 1), []
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def bars_from(opens: np.ndarray, closes: np.ndarray, sessions: list[dt.date]) -> pl.DataFrame:
    """Long bars from [T, N] matrices; NaN open or close -> no bar."""
    t_idx, s_idx = np.nonzero(np.isfinite(opens) & np.isfinite(closes))
    o, c = opens[t_idx, s_idx], closes[t_idx, s_idx]
    return pl.DataFrame(
        {
            "date": pl.Series([sessions[i] for i in t_idx], dtype=pl.Date),
            "symbol": [f"S{j}" for j in s_idx],
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": np.full(o.size, 1e6),
        }
    )


def test_compute_labels_with_hand_sigma() -> None:
    """Same 5-close history for three symbols, so σ_4 is one number computed here by hand."""
    history = [100.0, 101.0, 99.0, 100.0, 102.0]
    sigma = np.std(np.diff(np.log(history)), ddof=1)
    e = 100.0  # open of session 5 = entry of decision 4
    paths = {  # closes of sessions 5..8 (max_holding 4, lag 1 -> τ_v = session 8)
        "S0": [e * (1 + 1.9 * sigma), e * (1 + 2.1 * sigma), e, e],  # upper at 6
        "S1": [e * (1 - 0.5 * sigma), e * (1 + 1.99 * sigma), e * (1 - 1.1 * sigma), e],  # lower 7
        "S2": [e * (1 + 0.5 * sigma), e * (1 - 0.9 * sigma), e, e * (1 - 0.3 * sigma)],  # vert
    }
    sessions = weekdays(9)
    closes = np.array([history + p for p in paths.values()]).T
    opens = closes.copy()
    opens[5] = e
    bars = bars_from(opens, closes, sessions)
    tb_cfg = {"tp": 2.0, "sl": 1.0, "max_holding": 4, "vol_window": 4}
    out = compute_labels(bars, sessions, LabelConfig(horizon=2, triple_barrier=tb_cfg))
    tb = out.filter((pl.col("date") == sessions[4]) & pl.col("name").str.starts_with("tb_"))
    got = {(r["symbol"], r["name"]): (r["t1"], r["value"]) for r in tb.iter_rows(named=True)}
    assert got[("S0", "tb_label")] == (sessions[6], 1.0)
    assert got[("S1", "tb_label")] == (sessions[7], -1.0)
    assert got[("S2", "tb_label")] == (sessions[8], -1.0)
    assert got[("S0", "tb_ret")][1] == pytest.approx(2.1 * sigma, rel=1e-9)
    assert got[("S1", "tb_ret")][1] == pytest.approx(-1.1 * sigma, rel=1e-9)
    assert got[("S2", "tb_ret")][1] == pytest.approx(-0.3 * sigma, rel=1e-9)
    zero = LabelConfig(horizon=2, triple_barrier={**tb_cfg, "vertical_label": "zero"})
    row = compute_labels(bars, sessions, zero).filter(
        (pl.col("date") == sessions[4])
        & (pl.col("symbol") == "S2")
        & (pl.col("name") == "tb_label")
    )
    assert row.select("t1", "value").rows() == [(sessions[8], 0.0)]
    # Decisions 0..2 lack enough returns (need ceil(0.75·4) = 3 valid returns in the window).
    assert out.filter(pl.col("name") == "tb_label")["date"].min() == sessions[3]


def reference(
    opens: np.ndarray, closes: np.ndarray, cfg: LabelConfig
) -> dict[tuple[int, int, str], tuple[int, float]]:
    """Row-by-row statement of the spec: {(t, symbol, name): (t1, value)}."""
    tb, lag = cfg.triple_barrier, cfg.execution_lag
    price = opens if cfg.price == "open" else closes
    t_len = int(np.flatnonzero(np.isfinite(closes).any(axis=1)).max()) + 1
    out: dict[tuple[int, int, str], tuple[int, float]] = {}
    for j in range(closes.shape[1]):
        c, p = closes[:, j].tolist(), price[:, j].tolist()
        for t in range(t_len):
            i, x = t + lag, t + lag + cfg.horizon
            if x < t_len and not math.isnan(p[i]) and not math.isnan(p[x]):
                out[(t, j, f"fwd_ret_{cfg.horizon}")] = (x, p[x] / p[i] - 1)
            rets = [
                math.log(c[s] / c[s - 1])
                for s in range(max(1, t - tb.vol_window + 1), t + 1)
                if not (math.isnan(c[s]) or math.isnan(c[s - 1]))
            ]
            if len(rets) < math.ceil(0.75 * tb.vol_window) or i >= t_len or math.isnan(p[i]):
                continue
            sd, hit, last = statistics.stdev(rets), None, None
            for tau in range(i, i + tb.max_holding):
                if tau >= t_len or math.isnan(c[tau]):
                    continue
                r = c[tau] / p[i] - 1
                last = (tau, r)
                if r > tb.tp * sd or r < -tb.sl * sd:
                    hit = (tau, 1.0 if r > 0 else -1.0, r)
                    break
            tau_v = i + tb.max_holding - 1
            if hit is None and tau_v < t_len and last is not None:
                sign = float(np.sign(last[1])) if tb.vertical_label == "sign" else 0.0
                hit = (tau_v, sign, last[1])
            if hit is not None:
                out[(t, j, "tb_label")] = (hit[0], hit[1])
                out[(t, j, "tb_ret")] = (hit[0], hit[2])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t_len, n = 70, 3
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (t_len, n)), axis=0))
    opens = closes * np.exp(rng.normal(0, 0.01, (t_len, n)))
    missing = rng.random((t_len, n)) < 0.1
    opens[missing], closes[missing] = NAN, NAN
    cfg = LabelConfig(
        horizon=int(rng.integers(1, 6)),
        execution_lag=int(rng.integers(0, 3)),
        price=str(rng.choice(["open", "close"])),
        triple_barrier={
            "tp": float(rng.choice([0.5, 1.0, 2.0])),
            "sl": float(rng.choice([0.5, 1.0, 2.0])),
            "max_holding": int(rng.integers(1, 12)),
            "vol_window": int(rng.integers(2, 12)),
            "vertical_label": str(rng.choice(["sign", "zero"])),
        },
    )
    sessions = weekdays(t_len + 5)
    out = compute_labels(bars_from(opens, closes, sessions), sessions, cfg)
    want = reference(opens, closes, cfg)
    index = {d: i for i, d in enumerate(sessions)}
    got = {
        (index[r["date"]], int(r["symbol"][1:]), r["name"]): (index[r["t1"]], r["value"])
        for r in out.iter_rows(named=True)
    }
    assert got.keys() == want.keys()
    for key, (t1, value) in want.items():
        assert got[key][0] == t1, key
        assert got[key][1] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert out.filter(pl.col("name") == "tb_label").height > 50  # the case is not vacuous
