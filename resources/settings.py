"""Settings and market data as Dagster resources (typed, Pythonic)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import dagster as dg
from pydantic import Field

from trademl.config import (
    AlphaConfig,
    ConfigError,
    DataConfig,
    Settings,
    config_path,
    fixed_at_load,
    load_settings,
)
from trademl.data.calendar import SessionCalendar, get_calendar
from trademl.data.sources import BarSource, open_source


class SettingsResource(dg.ConfigurableResource):
    """The typed settings of one YAML file (``TRADEML_CONFIG`` when empty), read at run time.

    `fixed` holds the `FIXED_AT_LOAD` values the code location was built with (JSON; empty:
    no check): the partitions, lookback windows and sleeves cannot change without reloading
    the definitions, so a run whose file now says otherwise is refused, naming the key.
    """

    config_path: str = ""
    fixed: str = ""

    def get(self) -> Settings:
        s = load_settings(self.config_path or None)
        if self.fixed:
            loaded = json.loads(self.fixed)
            now = fixed_at_load(s)
            changed = {k: (v, now.get(k)) for k, v in loaded.items() if now.get(k) != v}
            if changed:
                key, (old, new) = next(iter(changed.items()))
                raise ConfigError(
                    f"{self.config_path or config_path()}: {key} is {new} but the code "
                    f"location loaded {old} ({len(changed)} such setting(s): "
                    f"{', '.join(changed)}); partitions, lookback windows and sleeves are "
                    "fixed when the code location loads — reload it (restart `make dev`, "
                    "or Reload definitions in the UI) or restore the value"
                )
        return s


class MarketDataResource(dg.ConfigurableResource):
    """Where bars come from: the built-in synthetic market or a folder/file of bars."""

    source: Literal["synthetic", "files"] = "synthetic"
    path: str = ""
    start: str = "2019-01-02"
    n_symbols: int = 100
    symbols: list[str] = Field(default_factory=list)
    seed: int = 7
    alpha_mode: Literal["planted", "noise"] = "planted"
    alpha_horizon: int = 5
    target_ic: float = 0.05
    reversal_ic: float = 0.0
    missing_bar_rate: float = 0.002
    exchange: str = "XNYS"
    #: Where the synthetic market keeps its generated history ("" = regenerate every time).
    cache_dir: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> MarketDataResource:
        d = s.data
        return cls(
            source=d.source,
            path=d.path or "",
            start=d.start.isoformat(),
            n_symbols=d.symbols if isinstance(d.symbols, int) else len(d.symbols),
            symbols=d.symbols if isinstance(d.symbols, list) else [],
            seed=d.seed,
            alpha_mode=d.alpha.mode,
            alpha_horizon=d.alpha.horizon,
            target_ic=d.alpha.target_ic,
            reversal_ic=d.alpha.reversal_ic,
            missing_bar_rate=d.missing_bar_rate,
            exchange=s.calendar.exchange,
            cache_dir=str(s.home / "cache"),
        )

    def data_config(self) -> DataConfig:
        return DataConfig(
            source=self.source,
            path=self.path or None,
            start=dt.date.fromisoformat(self.start),
            symbols=self.symbols if self.source == "files" else self.n_symbols,
            seed=self.seed,
            missing_bar_rate=self.missing_bar_rate,
            alpha=AlphaConfig(
                mode=self.alpha_mode,
                horizon=self.alpha_horizon,
                target_ic=self.target_ic,
                reversal_ic=self.reversal_ic,
            ),
        )

    def calendar(self) -> SessionCalendar:
        start = dt.date.fromisoformat(self.start) - dt.timedelta(days=45)
        return get_calendar(self.exchange, start, self.cache_dir or None)

    def open(self) -> BarSource:
        return open_source(self.data_config(), self.calendar(), self.cache_dir or None)
