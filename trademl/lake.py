"""The lake: one Delta Lake table per asset, partitioned by its session column.

Layout: ``<root>/<asset>/`` is a Delta table (``_delta_log/`` + ``<column>=YYYY-MM-DD/``
parquet files) that DuckDB (``delta_scan``), Spark, polars (``pl.scan_delta``) and pyarrow
(``deltalake.DeltaTable(...).to_pyarrow_dataset()``) read as it is. The session column is
``date``, or the asset's own partition column (labels: ``t1``, the session a label becomes
known). Nothing but the table lives in a table's folder: files such as the synthetic market's
ground truth sit beside the tables, and ``<root>/_partitions`` is a table of its own that
records which sessions of which table were written (an empty session has no data files, so
the data alone cannot tell "written, empty" from "never written").

Writes are atomic Delta commits: a write of sessions A…B replaces exactly the rows of those
sessions (a predicate overwrite) in one commit, so a single-run backfill is one commit, a
re-run replaces exactly its sessions and a writer killed mid-commit leaves the table at its
previous version. Every commit is a version: `scan(..., version=v)` re-reads a table exactly
as it was (time travel), which is how a model's training set is reproduced.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, SchemaMismatchError, TableNotFoundError
from upath import UPath

from trademl.lake_handles import (
    append_ledger,
    committed_version,
    latest_version,
    ledger_sessions,
    local_table,
    session_scan,
)
from trademl.lake_write import commit_sessions

LOCAL_PROTOCOLS = ("", "file", "local")
#: The table that records the written sessions of every table.
LEDGER = "_partitions"
_LEDGER_SCHEMA = {
    "table": pl.String,
    "table_id": pl.String,
    "session": pl.String,
    "rows": pl.Int64,
    "version": pl.Int64,
}
_RETRIES = 8


class LakeError(RuntimeError):
    """The lake is missing partitions or got a frame it cannot place."""


@dataclass(frozen=True, slots=True)
class TableRead:
    """What one read of a table saw: its Delta version and the sessions' span (None: the
    whole, unpartitioned table). Recorded on every MLflow run, it re-reads the same rows."""

    version: int
    sessions: tuple[str, str] | None

    def as_tag(self) -> str:
        span = "all" if self.sessions is None else "..".join(self.sessions)
        return f"v{self.version}:{span}"

    @staticmethod
    def from_tag(text: str) -> TableRead:
        version, _, span = text.partition(":")
        if not version.startswith("v") or not span:
            raise LakeError(f"{text!r}: expected a lake read tag like 'v12:2024-01-02..2024-06-28'")
        first, _, last = span.partition("..")
        return TableRead(int(version[1:]), None if span == "all" else (first, last))


#: MLflow tag prefix of the lake reads behind a run (`lake.<table>` → `TableRead.as_tag`).
READ_TAG = "lake."


def write_atomic(path: UPath, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file, the new one, or none.

    Locally: a temp file in the same folder, fsync, then rename. Object stores
    (s3://…) publish a PUT atomically, so one write (through pyarrow's S3 client, which reads
    the AWS_* variables) suffices there.
    """
    if path.protocol not in LOCAL_PROTOCOLS:
        from pyarrow import fs

        store, key = fs.FileSystem.from_uri(str(path))
        with store.open_output_stream(key) as out:
            out.write(data)
        return
    final = os.fspath(path.path)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def storage_options_for(root: UPath) -> dict[str, str]:
    """delta-rs storage options: none locally; on S3, safe concurrent writers through S3
    conditional puts (credentials and endpoint come from the usual AWS_* variables; they stay
    in memory, never in a log, a file or an MLflow run)."""
    if root.protocol in LOCAL_PROTOCOLS:
        return {}
    opts = {"conditional_put": "etag"}
    for env, key in (
        ("AWS_ENDPOINT_URL", "endpoint_url"),
        ("AWS_REGION", "region"),
        ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
        ("AWS_SESSION_TOKEN", "aws_session_token"),
    ):
        if os.environ.get(env):
            opts[key] = os.environ[env]
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["allow_http"] = "true"
    return opts


def _committed(fn: Any, what: str) -> None:
    """Run a Delta write, retrying a commit that lost a race to a concurrent writer."""
    for attempt in range(_RETRIES):
        try:
            fn()
            return
        except CommitFailedError:
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError(what)  # pragma: no cover


class Lake:
    """Paths, reads and writes of the lake, usable without Dagster (reports, notebooks)."""

    def __init__(
        self, root: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None
    ) -> None:
        self.root = UPath(root)
        self.storage_options = dict(
            storage_options if storage_options is not None else storage_options_for(self.root)
        )
        self._local = self.root.protocol in LOCAL_PROTOCOLS

    # --- paths and metadata -------------------------------------------------------------
    def uri(self, asset: str) -> str:
        """The table's location as delta-rs, DuckDB and Spark take it."""
        path = self.root / asset
        if self.root.protocol in LOCAL_PROTOCOLS:
            return os.path.abspath(os.fspath(path.path))
        return str(path)

    def table(self, asset: str, version: int | None = None) -> DeltaTable:
        """The Delta table of `asset` (at `version`), or a LakeError saying what to do.
        Locally, one handle per version is shared within the process (`lake_handles`)."""
        uri = self.uri(asset)

        def open_table(at: int | None) -> DeltaTable:
            try:
                return DeltaTable(uri, version=at, storage_options=self.storage_options)
            except TableNotFoundError as exc:
                raise LakeError(
                    f"lake {self.root}/{asset}: no Delta table there; materialize {asset} "
                    "first (an older parquet lake: python -m trademl_jobs.lake migrate)"
                ) from exc

        if not self._local:
            return open_table(version)
        try:
            return local_table(uri, version, open_table)
        except FileNotFoundError:
            return open_table(version)  # raises the LakeError above

    def exists(self, asset: str) -> bool:
        """Whether `asset` has a Delta table (a local path that is a file has none)."""
        uri = self.uri(asset)
        if self._local:
            return latest_version(uri) is not None
        return DeltaTable.is_deltatable(uri, storage_options=self.storage_options)

    def version(self, asset: str) -> int:
        """The table's current Delta version (each commit is one)."""
        if self._local:
            newest = latest_version(self.uri(asset))
            if newest is not None:
                return newest
        return self.table(asset).version()

    def partitions(self, asset: str, version: int | None = None) -> list[str]:
        """Sessions (YYYY-MM-DD) written to `asset` (as of its Delta `version`), empty ones too."""
        if not self.exists(asset):
            return []
        return self._written(asset, self.table(asset, version), version is not None)

    def _written(self, asset: str, table: DeltaTable, pinned: bool) -> list[str]:
        """The ledger's sessions of this very table (a deleted and re-created table has a new
        id, so what was written to the old one does not count)."""
        if not self._local and not self.exists(LEDGER):
            return []
        upto = table.version() if pinned else None
        return ledger_sessions(
            self.uri(LEDGER), self.storage_options, asset, table.metadata().id, upto
        )

    # --- reads ---------------------------------------------------------------------------
    def scan(
        self, asset: str, partitions: Sequence[str] | None, version: int | None = None
    ) -> pl.LazyFrame:
        """A LazyFrame over the given sessions (None: the whole, unpartitioned table), at the
        table's current version or `version`; rows in session order, columns as written."""
        table = self.table(asset, version)
        if partitions is not None:
            keys = list(partitions)
            written = set(self._written(asset, table, version is not None))
            absent = [k for k in keys if k not in written]
            if absent:
                shown = ", ".join(absent[:5]) + (
                    f" (+{len(absent) - 5} more)" if len(absent) > 5 else ""
                )
                raise LakeError(
                    f"lake {self.root}/{asset}: {len(absent)} of {len(keys)} needed partitions "
                    f"are not written ({shown}); materialize {asset} for them first"
                )
        names = [f.name for f in table.schema().fields]
        if partitions is None:
            return pl.scan_delta(table).select(names)
        (column,) = table.metadata().partition_columns
        lf = session_scan(table, column, keys)
        if lf is None:
            dates = pl.Series([dt.date.fromisoformat(k) for k in keys], dtype=pl.Date)
            lf = pl.scan_delta(table).select(names).filter(pl.col(column).is_in(dates.implode()))
        return lf.select(names).sort(column, maintain_order=True)

    def reread(self, asset: str, read: TableRead) -> pl.LazyFrame:
        """Exactly the rows a recorded read saw, whatever was written since (time travel)."""
        if read.sessions is None:
            return self.scan(asset, None, version=read.version)
        first, last = read.sessions
        keys = [k for k in self.partitions(asset, read.version) if first <= k <= last]
        return self.scan(asset, keys, version=read.version)

    def training_data(self, tags: Mapping[str, str]) -> dict[str, pl.LazyFrame]:
        """Every table an MLflow run's tags say it read (`lake.<table>`), as it was read."""
        reads = {k.removeprefix(READ_TAG): v for k, v in tags.items() if k.startswith(READ_TAG)}
        if not reads:
            raise LakeError(
                "the run records no lake reads (no 'lake.<table>' tags): it was logged before "
                "the lake kept versions, or by a step that read no lake table"
            )
        return {t: self.reread(t, TableRead.from_tag(v)) for t, v in sorted(reads.items())}

    def scan_all(self, asset: str) -> pl.LazyFrame:
        """A LazyFrame over every written session of `asset`."""
        keys = self.partitions(asset)
        if not keys:
            raise LakeError(f"lake {self.root}/{asset}: no partitions written yet")
        return self.scan(asset, keys)

    # --- writes --------------------------------------------------------------------------
    def write_partitions(
        self, asset: str, frame: pl.DataFrame, partitions: Sequence[str], column: str
    ) -> dict[str, int]:
        """Replace sessions `partitions` (a contiguous run of sessions) of `asset` by `frame`,
        in one commit; returns rows per session.

        Every requested session is recorded as written (an empty one too), and every row
        must fall in one of them: rows for sessions outside the run are an error.
        """
        if column not in frame.columns:
            raise LakeError(f"{asset}: output lacks the partition column {column!r}")
        keys = sorted(partitions)
        frame = frame.with_columns(pl.col(column).cast(pl.Date))
        key = pl.col(column).cast(pl.String)
        stray = frame.filter(~key.is_in(keys))
        if stray.height:
            bad = stray.get_column(column).unique().sort().head(3).to_list()
            raise LakeError(
                f"{asset}: {stray.height} rows have {column} outside the run's partitions "
                f"{keys[0]}…{keys[-1]}, e.g. {bad}"
            )
        current = self.table(asset) if self.exists(asset) else None
        if current is not None:
            (have,) = current.metadata().partition_columns
            if have != column:
                raise LakeError(
                    f"lake {self.root}/{asset}: the table is partitioned by {have!r}, the output "
                    f"by {column!r}; delete the table or keep the partition column"
                )
        predicate = f"{column} >= '{keys[0]}' AND {column} <= '{keys[-1]}'"
        token = uuid.uuid4().hex
        uri = self.uri(asset)
        span = {"trademl.sessions": f"{keys[0]}..{keys[-1]}"}

        def merge() -> None:  # new columns: delta-rs' writer merges the schema
            write_deltalake(
                uri,
                frame.to_arrow(),
                partition_by=[column],
                mode="overwrite",
                predicate=predicate,
                schema_mode="merge",
                storage_options=self.storage_options,
                commit_properties=CommitProperties(
                    custom_metadata={**span, "trademl.write": token}
                ),
            )

        try:
            if not commit_sessions(
                uri,
                frame,
                keys,
                column,
                token=token,
                metadata=span,
                storage_options=self.storage_options,
                table=current,
            ):
                _committed(merge, asset)
        except SchemaMismatchError as exc:
            raise LakeError(
                f"lake {self.root}/{asset}: the output's columns {dict(frame.schema)} do not fit "
                f"the table's schema ({exc}); re-materialize every session of {asset} after "
                "deleting the table, or keep the columns' types"
            ) from exc
        counts = dict.fromkeys(keys, 0)
        if frame.height:
            per = frame.group_by(key.alias("k")).len()
            counts |= dict(zip(per.get_column("k"), per.get_column("len"), strict=True))
        # the table's id does not change with a commit: the handle read before it has it
        table_id = (current if current is not None else self.table(asset)).metadata().id
        self._record(asset, counts, table_id, self._commit_version(asset, token))
        return counts

    def _commit_version(self, asset: str, token: str) -> int:
        """The version of the commit carrying `token` (another writer may have committed
        since): locally from the newest commit files' first lines, else from the history."""
        uri = self.uri(asset)
        version = committed_version(uri, token) if self._local else None
        if version is None:
            version = next(
                (
                    h["version"]
                    for h in self.table(asset).history(limit=64)
                    if h.get("trademl.write") == token
                ),
                None,
            )
        if version is None:
            raise LakeError(f"lake {self.root}/{asset}: the commit just written is not in its log")
        return version

    def _record(self, asset: str, counts: Mapping[str, int], table_id: str, version: int) -> None:
        """Append the sessions of one commit to the ledger (appends never conflict), with the
        table's id and the version of that very commit."""
        rows = pl.DataFrame(
            {
                "table": [asset] * len(counts),
                "table_id": [table_id] * len(counts),
                "session": list(counts),
                "rows": list(counts.values()),
                "version": [version] * len(counts),
            },
            schema=_LEDGER_SCHEMA,
        ).to_arrow()
        _committed(lambda: append_ledger(self.uri(LEDGER), self.storage_options, rows), LEDGER)

    def write(self, asset: str, frame: pl.DataFrame) -> None:
        """Replace an unpartitioned asset's table, in one commit."""
        data = frame.to_arrow()
        _committed(
            lambda: write_deltalake(
                self.uri(asset),
                data,
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=self.storage_options,
            ),
            asset,
        )

    def write_json(self, name: str, obj: object) -> UPath:
        """Write a JSON file beside the tables (e.g. `bars_ground_truth.json`), never inside a
        table's folder: a table's folder holds the table and nothing else."""
        if "/" in name or not name.endswith(".json"):
            raise LakeError(f"{name!r}: expected a plain file name ending in .json")
        path = self.root / name
        write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())
        return path


def session_keys(sessions: Sequence[dt.date]) -> list[str]:
    """Partition keys of sessions."""
    return [d.isoformat() for d in sessions]
