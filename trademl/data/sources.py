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


def last_session(source: BarSource, calendar: SessionCalendar) -> dt.date:
    """The latest session the source has bars for: the synthetic market's is the latest
    completed session; a files source's is its latest dated row (on a session)."""
    if isinstance(source, SyntheticMarket):
        return calendar.latest_completed_session()
    dates = source.load().get_column("date")
    if dates.len() == 0:
        raise ValueError("the data source holds no bars at all")
    latest = dates.max()
    assert isinstance(latest, dt.date)
    return latest if calendar.is_session(latest) else calendar.previous_session(latest) or latest


def resolve_as_of(
    requested: dt.date | None, data_last: dt.date, calendar: SessionCalendar, first: dt.date
) -> dt.date:
    """The session a run is as of: `requested`, or the data's last session; refused, saying
    what to do, when it is not a session, is after the data ends or before `first`."""
    if requested is None:
        return data_last
    if not calendar.is_session(requested):
        after = calendar.next_session(requested)
        raise ValueError(
            f"{requested} is not a {calendar.exchange} session; run with --as-of {after} "
            "(the next session) or another session"
        )
    if requested > data_last:
        raise ValueError(
            f"your data ends {data_last}; run with --as-of {data_last} or add the missing "
            f"sessions up to {requested}"
        )
    if requested < first:
        raise ValueError(
            f"{requested} is before the first session with enough history ({first}); run with "
            f"--as-of {first} or later, or start the data earlier"
        )
    return requested


def open_source(
    cfg: DataConfig, calendar: SessionCalendar, cache_dir: str | None = None
) -> BarSource:
    """The source `data.source` names, configured from `cfg` (the synthetic market keeps its
    generated history in `cache_dir` when given)."""
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
        return SyntheticMarket(spec, calendar, cache_dir=cache_dir)
    if not cfg.path:
        raise ValueError("data.source is 'files' but data.path is not set")
    symbols = cfg.symbols if isinstance(cfg.symbols, list) and cfg.symbols else None
    return FilesSource(cfg.path, symbols=symbols, exchange_tz=str(calendar.tz))
