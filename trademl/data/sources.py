"""Open the configured bar source: the built-in synthetic market or the user's files."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import polars as pl

from trademl.config import DataConfig
from trademl.data.calendar import SessionCalendar
from trademl.data.files import FilesSource
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec


class BarSource(Protocol):
    """Anything that returns long-format bars for start ≤ date ≤ end."""

    def load(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame: ...


def open_source(cfg: DataConfig, calendar: SessionCalendar) -> BarSource:
    """The source `data.source` names, configured from `cfg`."""
    if cfg.source == "synthetic":
        if not isinstance(cfg.symbols, int):
            raise ValueError("data.symbols must be a number of names for the synthetic market")
        spec = SyntheticSpec(
            n_symbols=cfg.symbols,
            seed=cfg.seed,
            start=cfg.start,
            alpha_mode=cfg.alpha.mode,
            alpha_feature=cfg.alpha.feature,
            horizon=cfg.alpha.horizon,
            target_ic=cfg.alpha.target_ic,
            reversal_ic=cfg.alpha.reversal_ic,
            missing_bar_rate=cfg.missing_bar_rate,
        )
        return SyntheticMarket(spec, calendar)
    if not cfg.path:
        raise ValueError("data.source is 'files' but data.path is not set")
    symbols = cfg.symbols if isinstance(cfg.symbols, list) and cfg.symbols else None
    return FilesSource(cfg.path, symbols=symbols, exchange_tz=str(calendar.tz))
