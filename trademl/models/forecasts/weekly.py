"""Weekly-return samples for the sequence forecasters (LSTM): each name's last `seq_len`
daily log returns at a week's last session, and the log return of the `horizon` sessions after.

A sample decided at session d (its week's last session) has the input r_{d−seq_len+1..d} and
the target Σ r_{d+1..d+horizon}, r_s = log(close_s / close_{s−1}). The target is known at the
close of d + horizon, so a model as of session T trains only on samples whose target ended by T
(`known` ≤ T): appending later bars never changes them (point in time). A name missing a bar
in either window has no sample that week.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["WeeklySamples", "weekly_samples"]


@dataclass(frozen=True)
class WeeklySamples:
    """Sequences and targets, in decision-date order (then symbol).

    x : (N, seq_len, 1) float32 daily log returns; y : (N,) float64 forward `horizon`-session
    log return; date : (N,) decision sessions; known : (N,) sessions the target is known at;
    symbol : (N,) names.
    """

    x: np.ndarray
    y: np.ndarray
    date: np.ndarray
    known: np.ndarray
    symbol: np.ndarray

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: np.ndarray) -> WeeklySamples:
        return WeeklySamples(
            self.x[idx], self.y[idx], self.date[idx], self.known[idx], self.symbol[idx]
        )


def _week_ends(sessions: Sequence[dt.date]) -> np.ndarray:
    """Positions of each ISO week's last session."""
    weeks = np.array([d.isocalendar()[:2] for d in sessions]).reshape(-1, 2)
    last = np.ones(len(sessions), dtype=bool)
    if len(sessions) > 1:
        last[:-1] = (weeks[1:] != weeks[:-1]).any(axis=1)
    return np.flatnonzero(last)


def weekly_samples(
    bars: pl.DataFrame,
    sessions: Sequence[dt.date],
    *,
    seq_len: int,
    horizon: int,
    as_of: dt.date | None = None,
) -> WeeklySamples:
    """Samples of every name at every week end whose windows fit inside `sessions`.

    Parameters
    ----------
    bars : columns date, symbol, close (the lake's `bars`).
    sessions : the exchange sessions the bars span, ascending (the calendar, so a missing
        bar is a gap, not a shorter week).
    seq_len, horizon : input length and target horizon in sessions.
    as_of : keep only samples whose target is known by then (None: every one).
    """
    for col in ("date", "symbol", "close"):
        if col not in bars.columns:
            raise ValueError(f"weekly samples: bars lack the column {col!r}")
    days = list(sessions)
    wide = (
        bars.select("date", "symbol", pl.col("close").cast(pl.Float64))
        .pivot(on="symbol", index="date", values="close", aggregate_function="first")
        .join(pl.DataFrame({"date": days}, schema={"date": pl.Date}), on="date", how="right")
        .sort("date")
    )
    names = np.array(sorted(c for c in wide.columns if c != "date"))
    close = wide.select(names.tolist()).to_numpy().astype(np.float64) if names.size else None
    empty = WeeklySamples(
        np.zeros((0, seq_len, 1), np.float32),
        np.zeros(0),
        np.zeros(0, "datetime64[D]"),
        np.zeros(0, "datetime64[D]"),
        np.zeros(0, dtype=object),
    )
    if close is None or len(days) < seq_len + horizon + 1:
        return empty
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.full_like(close, np.nan)
        r[1:] = np.log(close[1:] / close[:-1])
    day_arr = np.array(days, dtype="datetime64[D]")
    xs, ys, dates, known, syms = [], [], [], [], []
    for t in _week_ends(days):
        if t < seq_len or t + horizon >= len(days):
            continue
        if as_of is not None and days[t + horizon] > as_of:
            continue
        window = r[t - seq_len + 1 : t + 1]  # (seq_len, names)
        fwd = r[t + 1 : t + horizon + 1].sum(axis=0)
        ok = np.isfinite(window).all(axis=0) & np.isfinite(r[t + 1 : t + horizon + 1]).all(axis=0)
        if not ok.any():
            continue
        xs.append(window[:, ok].T[:, :, None].astype(np.float32))
        ys.append(fwd[ok])
        dates.append(np.full(ok.sum(), day_arr[t]))
        known.append(np.full(ok.sum(), day_arr[t + horizon]))
        syms.append(names[ok])
    if not xs:
        return empty
    return WeeklySamples(
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(dates),
        np.concatenate(known),
        np.concatenate(syms),
    )
