"""Dagster's sqlite storage with batched asset-event writes, for the local deployment.

A single-run backfill of N sessions stores N materialization events. Dagster's sqlite event
log writes each on its own: a new engine, connection and transaction for the run's shard and
again for the asset index, ≈ 14 ms per event here — 70 s of a 5,029-session backfill. Dagster
hands a partitioned output's events over as one batch when ``DAGSTER_EVENT_BATCH_SIZE`` is set
(`trademl_jobs.definitions` sets it), but its sqlite storage stores a batch one event at a
time. `BatchedSqliteEventLogStorage.store_event_batch` writes the batch in one transaction
per shard, through the same statements Dagster's `store_event` uses (the rows are identical).
With ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` (set beside it) the run's creation
records one "planned" event per asset instead of one per partition; the price is that a
failed range run does not mark each of its partitions failed (the run itself is failed).

Configured in ``configs/dagster.local.yaml`` as ``storage: custom:`` with this module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import yaml
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import SingletonThreadPool

#: What `trademl_jobs.definitions` puts in the environment (unless already set).
DAGSTER_ENV = {
    "DAGSTER_EVENT_BATCH_SIZE": "10000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}


#: Shards whose engine (and sqlite connection) stays open: the run's own, the index, a few more.
_KEEP_ENGINES = 8


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Sqlite event log storage that stores a batch of asset events in one transaction."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        """Dagster's `_connect`, keeping the engines of the last `_KEEP_ENGINES` shards used
        (each with one sqlite connection per thread): Dagster builds and disposes an engine
        and opens and closes a connection for every event it stores, about a third of a
        `daily` run's event bookkeeping here. Transactions are unchanged: each one commits."""
        with self._db_lock:
            engines = self._engines
            engine = engines.pop(shard, None)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=SingletonThreadPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
            engines[shard] = engine  # most recently used last
            while len(engines) > _KEEP_ENGINES:  # a long-lived webserver reads many runs
                engines.pop(next(iter(engines))).dispose()
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    @property
    def _engines(self) -> OrderedDict[str, Any]:
        return self.__dict__.setdefault("_trademl_engines", OrderedDict())

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._dispose_engines()  # no connection may outlive the files wipe deletes
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        runs = {e.run_id for e in events}
        plain = all(e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS for e in events)
        if len(events) < 2 or len(runs) != 1 or not plain:
            for event in events:
                self.store_event(event)
            return
        statements = [self.prepare_insert_event(e) for e in events]
        with self.run_connection(next(iter(runs))) as conn:
            for statement in statements:
                conn.execute(statement)
        with self.index_transaction() as conn:
            ids: list[int] = []
            for statement in statements:
                with db_result(conn, statement) as result:
                    ids.append(result.inserted_primary_key[0])
            self._store_asset_event_tags(conn, events, ids)
            for event, event_id in zip(events, ids, strict=True):
                self._store_asset_event(conn, event, event_id)


class BatchedSqliteStorage(DagsterSqliteStorage):
    """`DagsterSqliteStorage` (same files, same layout) with the batched event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = BatchedSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchedSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return ConfigurableClassData(
            __name__,
            BatchedSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": _event_logs_directory(self.base_dir)}),
        )
