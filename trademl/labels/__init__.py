"""Point-in-time labels: forward returns and AFML triple barriers, in long format.

A decision at session t's close trades at session t+execution_lag; each label row carries t1,
the session at which it becomes known, and is only emitted once every bar it needs exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from trademl.config import LabelConfig
from trademl.labels.forward import forward_returns
from trademl.labels.triple_barrier import rolling_sigma, triple_barrier_matrix

__all__ = ["compute_labels", "forward_returns", "label_names", "triple_barrier_matrix"]

LABEL_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "t1": pl.Date(),
    "name": pl.String(),
    "value": pl.Float64(),
}


def label_names(cfg: LabelConfig) -> list[str]:
    """Names of the label series `compute_labels` emits, in output sort order."""
    return sorted([f"fwd_ret_{cfg.horizon}", "tb_label", "tb_ret"])


@dataclass(frozen=True)
class _Grid:
    """Bars pivoted onto the (session × symbol) grid; NaN where a bar is missing."""

    sessions: pl.Series  # pl.Date, length T
    symbols: pl.Series  # pl.String, sorted, length N
    fields: dict[str, np.ndarray]  # field -> [T, N] float64


def _pivot(bars: pl.DataFrame, sessions: list[dt.date], fields: list[str]) -> _Grid:
    """Pivot long bars onto the session grid, cut after the last session holding any bar.

    Sessions after the last bar are data not yet seen, not missing bars: dropping them keeps
    a vertical barrier there from being resolved early with the last observed close.
    """
    sess = pl.Series("date", sessions, dtype=pl.Date)
    sess_days = sess.to_physical().to_numpy().astype(np.int64)
    if sess_days.size > 1 and not (np.diff(sess_days) > 0).all():
        raise ValueError("sessions must be sorted and unique")
    if bars.get_column("date").null_count() or bars.get_column("symbol").null_count():
        raise ValueError("bars hold a null date or symbol")
    symbols = bars.get_column("symbol").unique().sort()
    if bars.height == 0:
        return _Grid(sess[:0], symbols, {f: np.empty((0, 0)) for f in fields})
    if sess_days.size == 0:
        raise ValueError("bars hold dates that are not in the session list")
    # Date -> session index through a lookup table over the calendar days of the grid.
    lut = np.full(int(sess_days[-1] - sess_days[0]) + 1, -1, dtype=np.int64)
    lut[sess_days - sess_days[0]] = np.arange(sess_days.size)
    rel = bars.get_column("date").cast(pl.Date).to_physical().to_numpy() - sess_days[0]
    ti = lut[np.clip(rel, 0, lut.size - 1)]
    if ((rel < 0) | (rel >= lut.size) | (ti < 0)).any():
        raise ValueError("bars hold dates that are not in the session list")
    si = bars.get_column("symbol").cast(pl.Enum(symbols)).to_physical().to_numpy()
    t_len, n_sym = int(ti.max()) + 1, symbols.len()
    flat = ti * n_sym + si.astype(np.int64)
    if np.bincount(flat, minlength=t_len * n_sym).max() > 1:
        raise ValueError("bars hold more than one row for a (date, symbol)")
    out: dict[str, np.ndarray] = {}
    for f in fields:
        m = np.full(t_len * n_sym, np.nan)
        v = bars.get_column(f).cast(pl.Float64).to_numpy()
        # Non-finite or non-positive prices are treated as missing bars.
        with np.errstate(invalid="ignore"):
            m[flat] = np.where(np.isfinite(v) & (v > 0), v, np.nan)
        out[f] = m.reshape(t_len, n_sym)
    return _Grid(sess[:t_len], symbols, out)


def _long(
    grid: _Grid, parts: list[tuple[str, np.ndarray, np.ndarray]], max_span: int
) -> pl.DataFrame:
    """Stack (name, value [T, N], t1 [T, N]) parts into the long frame sorted by t1, date, ….

    A counting sort: labels are scanned in (date, symbol, name) order once per span
    d = t1 − date (0 … max_span) and each goes to its slot among the rows sharing its t1,
    which come by increasing date (decreasing span). No O(n log n) sort of all the rows.
    """
    parts = sorted(parts, key=lambda p: p[0])
    t_len, n_sym, n_parts = grid.sessions.len(), grid.symbols.len(), len(parts)
    per_date = n_sym * n_parts
    t_col = np.arange(t_len, dtype=np.int64)[:, None]
    span_dtype = np.int8 if max_span < 127 else np.int32
    span = np.stack(
        [np.where(t1 >= 0, t1 - t_col, -1).astype(span_dtype) for _, _, t1 in parts], axis=2
    ).reshape(t_len, per_date)  # (date, symbol, name) order; −1 where absent
    runs: list[tuple[np.ndarray, np.ndarray]] = []  # per span: flat index, date of each label
    counts = np.zeros((t_len + max_span, max_span + 1), dtype=np.int64)  # [t1, span]
    for d in range(max_span + 1):
        idx = np.flatnonzero(span == d)
        t_of = idx // per_date  # sorted
        bounds = np.searchsorted(t_of, np.arange(t_len + 1))
        runs.append((idx, t_of))
        counts[d : d + t_len, d] = np.diff(bounds)
    # Slot starts: by t1, then by span descending (earlier decision date first).
    flat = counts[:, ::-1].ravel()
    starts = (np.cumsum(flat) - flat).reshape(counts.shape)[:, ::-1]
    if int(flat.sum()) != np.count_nonzero(span >= 0):
        raise ValueError(f"a label spans more than max_span={max_span} sessions")
    src = np.empty(int(flat.sum()), dtype=np.int64)
    for d, (idx, t_of) in enumerate(runs):
        n_d = counts[d : d + t_len, d]
        base = starts[d : d + t_len, d] - (np.cumsum(n_d) - n_d)  # slot start − run offset
        src[base[t_of] + np.arange(idx.size)] = idx
    del runs
    t_idx = src // per_date
    col = src - t_idx * per_date
    t1_idx = t_idx + span.reshape(-1)[src]
    del span
    value = np.stack([v for _, v, _ in parts], axis=2).reshape(-1)[src]
    del src
    s_idx = col // n_parts
    code = col - s_idx * n_parts
    del col
    days = grid.sessions.to_physical().to_numpy()
    names = pl.Series([name for name, _, _ in parts], dtype=pl.String)
    return pl.DataFrame(
        {
            "date": pl.Series(days[t_idx]).cast(pl.Date),
            "symbol": grid.symbols.gather(pl.Series(s_idx.astype(np.uint32))),
            "t1": pl.Series(days[t1_idx]).cast(pl.Date),
            "name": names.gather(pl.Series(code.astype(np.uint32))),
            "value": value,
        },
        schema=LABEL_SCHEMA,
    )


def compute_labels(bars: pl.DataFrame, sessions: list[dt.date], cfg: LabelConfig) -> pl.DataFrame:
    """Forward-return and triple-barrier labels of every (decision session, symbol).

    `bars` is long (date, symbol, open, high, low, close, volume); `sessions` is the sorted
    exchange session grid covering them. Returns columns date (decision session t), symbol,
    t1 (session the label becomes known), name, value — sorted by t1, date, symbol, name.
    Sessions after the last session holding any bar count as not yet observed (the calendar
    may run ahead of the data), so no label is resolved there.
    """
    tb = cfg.triple_barrier
    grid = _pivot(bars, sessions, sorted({cfg.price, "close"}))
    if grid.sessions.len() == 0 or grid.symbols.len() == 0:
        return pl.DataFrame(schema=LABEL_SCHEMA)
    price, close = grid.fields[cfg.price], grid.fields["close"]
    fwd, fwd_t1 = forward_returns(price, horizon=cfg.horizon, lag=cfg.execution_lag)
    sigma = rolling_sigma(close, tb.vol_window)
    tb_label, tb_ret, tb_t1 = triple_barrier_matrix(
        price,
        close,
        sigma,
        tp=tb.tp,
        sl=tb.sl,
        max_holding=tb.max_holding,
        lag=cfg.execution_lag,
        vertical_label=tb.vertical_label,
    )
    parts = [
        (f"fwd_ret_{cfg.horizon}", fwd, fwd_t1),
        ("tb_label", tb_label, tb_t1),
        ("tb_ret", tb_ret, tb_t1),
    ]
    max_span = cfg.execution_lag + max(cfg.horizon, tb.max_holding - 1)
    return _long(grid, parts, max_span)
