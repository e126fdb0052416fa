"""Bars of a run's sessions, read from the source with enough history for quality control."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from trademl.config import QCConfig
from trademl.data.calendar import SessionCalendar
from trademl.data.quality import SessionQC, run_qc
from trademl.data.sources import BarSource

BAR_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}


@dataclass(frozen=True)
class SessionBars:
    """The run's bars (session-dated rows only) and the QC verdict of each session."""

    bars: pl.DataFrame
    qc: list[SessionQC]


def load_session_bars(
    source: BarSource,
    calendar: SessionCalendar,
    sessions: Sequence[dt.date],
    qc: QCConfig,
    *,
    training: tuple[int, int] = (756, 5),
) -> SessionBars:
    """Read bars for `sessions` (sorted) plus the trailing window QC needs, and run QC.

    `training` is (training sessions, label horizon) of the alpha, for the universe check."""
    first, last = sessions[0], sessions[-1]
    history = max(qc.universe_lookback, qc.gap_lookback, qc.realism_lookback)
    i0 = max(0, calendar.index(first) - history)
    window = calendar.sessions[i0 : calendar.index(last) + 1]
    frame = source.load(window[0], last)
    wrong = {c: t for c, t in BAR_SCHEMA.items() if frame.schema.get(c) != t}
    if wrong:
        raise TypeError(f"bar source returned columns {dict(frame.schema)}; expected {BAR_SCHEMA}")
    report = run_qc(frame, window, sessions, qc, training=training)
    bars = frame.filter(pl.col("date").is_in(pl.Series(list(sessions), dtype=pl.Date)))
    bars = bars.select(list(BAR_SCHEMA)).sort("date", "symbol", maintain_order=True)
    return SessionBars(bars, report)
