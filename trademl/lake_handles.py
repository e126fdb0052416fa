"""What a process keeps of the lake's Delta tables, so a daily run does not replay logs and
re-read files it already has (a 3,000-name daily run opened its tables ~240 times, ≈ 2.3 s of
a 9 s run).

- Handles: one per table version. A handle loaded at a version is never updated afterwards,
  so every LazyFrame built on it reads that version whatever is committed later — sharing it
  changes no read. A local table's newest version is found by listing its ``_delta_log``
  folder (a fraction of a millisecond); a version's handle is keyed by the identity of that
  version's commit file, so a table deleted and re-created under the same path never
  answers from the old one. Object stores are opened afresh each time.
- The ledger: a copy of its rows per table, following new commits from their new files and
  compacted every `COMPACT_EVERY` commits (`_Ledger`).
- Session reads: the files of the sessions asked for, grouped once per handle
  (`session_scan`), and a write's version found from the newest commits' first lines
  (`committed_version`).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

#: Handles kept (a daily run touches ~30 tables, each at its newest version).
_KEEP = 64
_LOG = "_delta_log"

_lock = threading.Lock()
_handles: OrderedDict[tuple[object, ...], DeltaTable] = OrderedDict()
_ledgers: dict[str, _Ledger] = {}


def _commit_name(version: int) -> str:
    return f"{version:020d}.json"


def latest_version(uri: str) -> int | None:
    """The newest commit of the local table at `uri` (None: no Delta log there)."""
    try:
        names = os.listdir(os.path.join(uri, _LOG))
    except (FileNotFoundError, NotADirectoryError):
        return None
    versions = [
        int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit()
    ]
    return max(versions) if versions else None


def _identity(uri: str, version: int) -> tuple[int, int, int, int] | None:
    """Who the commit file of `version` is (inode, size, mtime, ctime); None when it is not
    there (e.g. cleaned up after a checkpoint)."""
    try:
        st = os.stat(os.path.join(uri, _LOG, _commit_name(version)))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def committed_version(uri: str, token: str, depth: int = 64) -> int | None:
    """The version of the local table at `uri` whose commit carries ``trademl.write`` =
    `token`, among its newest `depth` commits (None: not found). A Delta commit file starts
    with its commitInfo line, so only first lines are read — not the whole log."""
    newest = latest_version(uri)
    if newest is None:
        return None
    for version in range(newest, max(-1, newest - depth), -1):
        try:
            with open(os.path.join(uri, _LOG, _commit_name(version)), "rb") as fh:
                first = json.loads(fh.readline() or b"{}")
        except (FileNotFoundError, ValueError):
            continue
        if first.get("commitInfo", {}).get("trademl.write") == token:
            return version
    return None


def local_table(
    uri: str, version: int | None, open_table: Callable[[int], DeltaTable]
) -> DeltaTable:
    """The handle of the local table at `uri` at `version` (None: the newest), opened by
    `open_table(version)` on first use. Raises FileNotFoundError when there is no table."""
    if version is None:
        version = latest_version(uri)
        if version is None:
            raise FileNotFoundError(uri)
    ident = _identity(uri, version)
    if ident is None:  # a version whose commit file was cleaned up: open it, keep nothing
        return open_table(version)
    key = (uri, version, *ident)
    with _lock:
        table = _handles.get(key)
        if table is not None:
            _handles.move_to_end(key)
            return table
    table = open_table(version)
    with _lock:
        # a newer version retires the older ones of the table (a large table's handle holds
        # its file list); a LazyFrame built on an old handle keeps it for as long as it lives
        for old in [k for k in _handles if k[0] == uri and k[1] < version]:
            del _handles[old]
        _handles[key] = table
        while len(_handles) > _KEEP:
            _handles.popitem(last=False)
    return table


class _Ledger:
    """The process's copy of one local ledger: a handle that follows its log incrementally and
    its rows per table. New commits are read from their new files only; our own appends are
    added as written; a compaction (files removed) or a re-created ledger (another folder or
    first commit) is read anew. Answers are kept until their table changes."""

    def __init__(self, uri: str, origin: object, storage_options: Mapping[str, str]) -> None:
        self.origin = origin
        self._open = lambda: DeltaTable(uri, storage_options=dict(storage_options))
        self.handle = self._open()
        self._reload()

    def _reload(self) -> None:
        rows = pl.scan_delta(self.handle).select(*_LEDGER_COLUMNS).collect()
        self.frames: dict[str, pl.DataFrame] = {}
        self.stamps: dict[str, int] = {}
        self.answers: dict[tuple[str, str, int | None, int], list[str]] = {}
        self._add(rows)
        self.files = set(self.handle.file_uris())
        self.version = self.handle.version()

    def _add(self, rows: pl.DataFrame) -> None:
        for (table,), part in rows.partition_by("table", as_dict=True).items():
            have = self.frames.get(str(table))
            part = part.select(_LEDGER_COLUMNS[1:])
            self.frames[str(table)] = part if have is None else pl.concat([have, part])
            self.stamps[str(table)] = self.stamps.get(str(table), 0) + 1

    def refresh(self) -> None:
        """Bring the copy up to the ledger's newest version (read anew when the commits
        since this copy's version are no longer all in the log, e.g. cleaned up)."""
        try:
            self.handle.update_incremental()
        except DeltaError:
            self.handle = self._open()
            self._reload()
            return
        if self.handle.version() == self.version:
            return
        uris = self.handle.file_uris()
        if not self.files.issubset(uris):  # compacted: the same rows in other files
            self._reload()
            return
        new = [u for u in uris if u not in self.files]
        if new:
            actions = pa.table(self.handle.get_add_actions(flatten=True))
            table_of = dict(
                zip(
                    actions.column("path").to_pylist(),
                    actions.column("partition.table").to_pylist(),
                    strict=True,
                )
            )
            root = self.handle.table_uri.removeprefix("file://").rstrip("/") + "/"
            self._add(
                pl.concat(
                    pl.read_parquet(u).with_columns(
                        pl.lit(table_of[u.removeprefix("file://").removeprefix(root)]).alias(
                            "table"
                        )
                    )
                    for u in new
                ).select(_LEDGER_COLUMNS)
            )
        self.files.update(new)
        self.version = self.handle.version()

    def append(self, rows: pa.Table) -> None:
        """Append `rows` and add them to the copy."""
        before = self.version
        write_deltalake(self.handle, rows, partition_by=["table"], mode="append")
        if self.handle.version() != before + 1:  # others committed meanwhile: read theirs too
            self.refresh()
            return
        self._add(pl.from_arrow(rows).select(_LEDGER_COLUMNS))  # type: ignore[union-attr]
        self.files = set(self.handle.file_uris())
        self.version = self.handle.version()

    def answer(self, asset: str, table_id: str, upto: int | None) -> list[str]:
        key = (asset, table_id, upto, self.stamps.get(asset, 0))
        if key not in self.answers:
            rows = self.frames.get(asset)
            if rows is None:
                return []
            rows = rows.filter(pl.col("table_id") == table_id)
            if upto is not None:
                rows = rows.filter(pl.col("version") <= upto)
            self.answers[key] = sorted(rows.get_column("session").unique())
        return list(self.answers[key])


#: The ledger's columns (`trademl.lake._LEDGER_SCHEMA`) this copy keeps.
_LEDGER_COLUMNS = ("table", "table_id", "session", "version")


def _tracked_ledger(uri: str, storage_options: Mapping[str, str]) -> _Ledger | None:
    """The process's copy of the local ledger at `uri`, brought up to date (None: no ledger
    yet). Hold `_lock`."""
    try:
        origin = (os.stat(os.path.join(uri, _LOG)).st_ino, _identity(uri, 0))
    except FileNotFoundError:
        return None
    held = _ledgers.get(uri)
    if held is None or held.origin != origin:
        held = _Ledger(uri, origin, storage_options)
        _ledgers[uri] = held
    else:
        held.refresh()
    return held


def _local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def ledger_sessions(
    uri: str,
    storage_options: Mapping[str, str],
    asset: str,
    table_id: str,
    upto: int | None,
) -> list[str]:
    """Sessions the ledger at `uri` records for table `asset` with id `table_id` (and, when
    `upto` is given, written at or before that version of it), sorted."""
    with _lock:
        if _local(uri):
            ledger = _tracked_ledger(uri, storage_options)
            return [] if ledger is None else ledger.answer(asset, table_id, upto)
    rows = pl.scan_delta(uri, storage_options=dict(storage_options)).filter(
        (pl.col("table") == asset) & (pl.col("table_id") == table_id)
    )
    if upto is not None:
        rows = rows.filter(pl.col("version") <= upto)
    return sorted(rows.select(pl.col("session").unique()).collect().get_column("session"))


def append_ledger(uri: str, storage_options: Mapping[str, str], rows: pa.Table) -> None:
    """Append `rows` to the ledger at `uri` (created by the first append); a local ledger
    through the process's copy (no log replay per write). Appends never conflict: delta-rs
    commits a stale handle's append at the next free version."""
    with _lock:
        ledger = _tracked_ledger(uri, storage_options) if _local(uri) else None
        if ledger is None:
            write_deltalake(
                uri,
                rows,
                partition_by=["table"],
                mode="append",
                storage_options=dict(storage_options),
            )
            return
        ledger.append(rows)
        if ledger.version % COMPACT_EVERY == 0:
            compact_ledger(ledger.handle)
            ledger.refresh()


#: Ledger commits between compactions: each commit adds a small file to its table's folder,
#: and a read of a table's sessions opens every file there (a year of daily runs: ~250).
COMPACT_EVERY = 64


def compact_ledger(ledger: DeltaTable) -> None:
    """Merge the ledger's small files (one per table) and checkpoint its log: the same rows,
    read from a few files. A compaction that loses a race to another one is simply dropped."""
    try:
        ledger.optimize.compact()
        ledger.create_checkpoint()
    except (CommitFailedError, DeltaError):
        ledger.update_incremental()


#: polars' own cast rules for Delta reads (`ScanCastOptions._default_iceberg`), spelled out.
_DELTA_CASTS = pl.ScanCastOptions(
    integer_cast="upcast",
    float_cast=["upcast", "downcast"],
    datetime_cast=("nanosecond-downcast", "millisecond-upcast", "convert-timezone"),
    missing_struct_fields="insert",
    extra_struct_fields="ignore",
    categorical_to_string="allow",
)
#: Attribute on a handle: its files by session (a handle never changes, so neither do they).
_FILES_ATTR = "_trademl_session_files"


def session_scan(table: DeltaTable, column: str, keys: Sequence[str]) -> pl.LazyFrame | None:
    """The rows of sessions `keys` of a local table, read from those sessions' files alone,
    or None where polars' Delta reader is needed (a remote table, a reader feature such as
    deletion vectors or column mapping, a path with '=' above the table).

    polars' Delta reader lists every file of the version and, on a handle's first filtered
    read, parses every file's statistics to prune: ≈ 0.2 s for a table of 5,000 sessions,
    paid again after each commit. Here a handle's files are grouped by session once (from
    their ``<column>=<session>/`` folders); the read is the same scan of the same files with
    the same casts and columns.
    """
    root = table.table_uri.removeprefix("file://")
    if not _local(table.table_uri) or "=" in root or table.protocol().min_reader_version > 1:
        return None
    with _lock:
        files = getattr(table, _FILES_ATTR, None)
        if files is None:
            files = {}
            prefix = f"{column}="
            for uri in table.file_uris():
                folder = uri.removeprefix("file://")[len(root) :].lstrip("/").split("/", 1)[0]
                if not folder.startswith(prefix):
                    return None  # not our layout: let polars read it
                files.setdefault(unquote(folder[len(prefix) :]), []).append(uri)
            setattr(table, _FILES_ATTR, files)
    schema = pl.Schema(table.schema())
    paths = [p for k in keys for p in files.get(k, ())]
    if not paths:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(
        paths,
        schema={n: t for n, t in schema.items() if n != column},
        hive_schema={column: schema[column]},
        hive_partitioning=True,
        missing_columns="insert",
        extra_columns="ignore",
        cast_options=_DELTA_CASTS,
    ).select(list(schema))


def forget() -> None:
    """Drop every handle and answer (tests that rewrite a table's history in place)."""
    with _lock:
        _handles.clear()
        _ledgers.clear()
