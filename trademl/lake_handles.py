"""Delta table handles shared within a process, so a run opens each table version once.

Opening a Delta table replays its log (≈ 15–35 ms here for a table of 5,000 sessions or for
the ledger); a daily run read its tables ~240 times, ≈ 2.3 s of a 9 s run. A handle loaded at
a version is never updated afterwards, so every LazyFrame built on it reads that version
whatever is committed later — sharing it changes no read. A local table's newest version is
found by listing its ``_delta_log`` folder (a fraction of a millisecond), and a version's
handle is keyed by the identity of that version's commit file, so a table deleted and
re-created under the same path never answers from the old one. Object stores are opened
afresh each time (their listing is as dear as the open).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

#: Handles kept (a daily run touches ~30 tables; a range run reads each at one version).
_KEEP = 96
_LOG = "_delta_log"

_lock = threading.Lock()
_handles: OrderedDict[tuple[object, ...], DeltaTable] = OrderedDict()
_ledgers: dict[str, tuple[object, DeltaTable]] = {}
_written: OrderedDict[tuple[object, ...], list[str]] = OrderedDict()


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
        _handles[key] = table
        while len(_handles) > _KEEP:
            _handles.popitem(last=False)
    return table


def _tracked_ledger(uri: str, storage_options: Mapping[str, str]) -> DeltaTable | None:
    """The process's handle on the local ledger at `uri`, brought up to date (None: no ledger
    yet). The ledger only grows (appends), so one handle follows it incrementally; a
    re-created ledger (another folder or first commit) is opened anew. Hold `_lock`."""
    try:
        origin = (os.stat(os.path.join(uri, _LOG)).st_ino, _identity(uri, 0))
    except FileNotFoundError:
        return None
    held = _ledgers.get(uri)
    if held is None or held[0] != origin:
        held = (origin, DeltaTable(uri, storage_options=dict(storage_options)))
        _ledgers[uri] = held
    else:
        held[1].update_incremental()
    return held[1]


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
    `upto` is given, written at or before that version of it), sorted; kept per ledger
    version."""
    with _lock:
        if _local(uri):
            ledger = _tracked_ledger(uri, storage_options)
            if ledger is None:
                return []
        else:
            ledger = DeltaTable(uri, storage_options=dict(storage_options))
        key = (uri, ledger.version(), asset, table_id, upto)
        if key in _written:
            return list(_written[key])
        rows = pl.scan_delta(ledger).filter(
            (pl.col("table") == asset) & (pl.col("table_id") == table_id)
        )
        if upto is not None:
            rows = rows.filter(pl.col("version") <= upto)
        sessions = sorted(rows.select(pl.col("session").unique()).collect().get_column("session"))
        _written[key] = sessions
        while len(_written) > _KEEP:
            _written.popitem(last=False)
    return list(sessions)


def append_ledger(uri: str, storage_options: Mapping[str, str], rows: pa.Table) -> None:
    """Append `rows` to the ledger at `uri` (created by the first append), through the
    process's handle on a local ledger: no log replay per write. Appends never conflict;
    delta-rs commits a stale handle's append at the next free version."""
    with _lock:
        ledger = _tracked_ledger(uri, storage_options) if _local(uri) else None
        write_deltalake(
            ledger if ledger is not None else uri,
            rows,
            partition_by=["table"],
            mode="append",
            storage_options=None if ledger is not None else dict(storage_options),
        )
        if ledger is not None and ledger.version() % COMPACT_EVERY == 0:
            compact_ledger(ledger)


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


def forget() -> None:
    """Drop every handle and answer (tests that rewrite a table's history in place)."""
    with _lock:
        _handles.clear()
        _ledgers.clear()
        _written.clear()
