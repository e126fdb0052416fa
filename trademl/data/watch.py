"""What changed in a files source since it was last looked at: new, modified or removed
files and the dates they cover — so a sensor ingests exactly those sessions.

A file's state is (mtime ns, size, first date, last date); only files whose (mtime, size)
moved are read again, so a tick over an unchanged folder reads no data."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from trademl.data.files import FilesSource

__all__ = ["Changes", "FileState", "changes", "dumps", "loads"]

#: path → [mtime_ns, size, first date, last date] (ISO dates; None for a file with no rows)
FileState = dict[str, list]


@dataclass(frozen=True)
class Changes:
    """The new state of every file, the paths that changed and the dates they span (the
    union of a changed file's old and new ranges: a removed row's session is re-ingested)."""

    state: FileState
    changed: list[str]
    first: dt.date | None
    last: dt.date | None

    @property
    def digest(self) -> str:
        """A short hash of the changed files' new state: the same change, the same digest."""
        part = {p: self.state.get(p) for p in self.changed}
        return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:12]


def changes(source: FilesSource, before: Mapping[str, list]) -> Changes:
    """Compare the files under `source` with `before` (a previous `Changes.state`)."""
    state: FileState = {}
    changed: list[str] = []
    dates: list[dt.date] = []
    for path in source.files():
        key, st = str(path), path.stat()
        old = before.get(key)
        if old is not None and old[:2] == [st.st_mtime_ns, st.st_size]:
            state[key] = list(old)
            continue
        frame = FilesSource(path, symbols=None, exchange_tz=source.exchange_tz).load()
        col = frame.get_column("date")
        first, last = (col.min(), col.max()) if frame.height else (None, None)
        state[key] = [st.st_mtime_ns, st.st_size, _iso(first), _iso(last)]
        changed.append(key)
        dates += [d for d in (first, last) if isinstance(d, dt.date)]
        if old is not None:
            dates += [dt.date.fromisoformat(d) for d in old[2:] if d]
    for key in sorted(set(before) - set(state)):  # removed: its old sessions lose their bars
        changed.append(key)
        dates += [dt.date.fromisoformat(d) for d in before[key][2:] if d]
    return Changes(state, changed, min(dates, default=None), max(dates, default=None))


def _iso(d: object) -> str | None:
    return d.isoformat() if isinstance(d, dt.date) else None


def dumps(state: FileState) -> str:
    return json.dumps(state, sort_keys=True)


def loads(cursor: str | None) -> FileState:
    return json.loads(cursor) if cursor else {}
