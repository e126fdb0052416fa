"""Where orders go: a dry run (default), Alpaca (paper unless live is explicitly unlocked), or
the historical replay (``kind="replay"``: past sessions filled at the next session's bars).

Credentials are never resource config: only the NAMES of the environment variables are, and
the values are read from ``os.environ`` when `get_broker` is called, so they never appear in
Dagster run config, metadata or the event log.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from trademl.execution.brokers import Broker, DryRunBroker


class BrokerResource(dg.ConfigurableResource):
    """Builds the session's `Broker`.

    ``kind="alpaca"`` trades Alpaca paper by default; live needs ``paper=False``,
    ``allow_live=True`` and ``base_url="https://api.alpaca.markets"`` together.
    """

    kind: Literal["dry_run", "alpaca", "replay"] = "dry_run"
    base_url: str = Field(default="", description="Endpoint override; empty: Alpaca paper.")
    paper: bool = True
    allow_live: bool = False
    key_env: str = Field(
        default="APCA_API_KEY_ID", description="NAME of the env var holding the key id."
    )
    secret_env: str = Field(
        default="APCA_API_SECRET_KEY", description="NAME of the env var holding the secret."
    )
    dry_run_equity: float = Field(
        default=100_000.0, description="Account equity the dry-run broker reports."
    )

    def get_broker(
        self,
        blotter_dir: str | os.PathLike[str] | None = None,
        session: dt.date | None = None,
        **replay: Any,
    ) -> Broker:
        """A broker whose records (dry-run orders or the submission journal) go to blotter_dir.

        The dry run treats orders recorded for sessions before `session` as filled, so its
        positions carry over from day to day like a paper ledger. The replay keeps its state
        in ``blotter_dir/replay``; ``replay`` holds its source, calendar, risk, params and
        costs (`ReplayBroker`'s keywords), and without `session` it is a read-only view.
        """
        if self.kind == "replay":
            from trademl.execution.replay import ReplayBroker

            if blotter_dir is None:
                raise ValueError("broker.kind 'replay' needs a folder for its state")
            return ReplayBroker(Path(blotter_dir) / "replay", session=session, **replay)
        if self.kind == "dry_run":
            return DryRunBroker(
                equity=self.dry_run_equity, record_dir=_dir(blotter_dir), fills_before=session
            )
        from trademl.execution.alpaca_broker import AlpacaBroker

        return AlpacaBroker(
            base_url=self.base_url or None,
            paper=self.paper,
            allow_live=self.allow_live,
            key_env=self.key_env,
            secret_env=self.secret_env,
            journal_dir=_dir(blotter_dir),
        )


def _dir(path: str | os.PathLike[str] | None) -> Path | None:
    return None if path is None else Path(path)
