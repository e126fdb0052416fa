"""A relocatable MLflow store: the sqlite store under TRADEML_HOME records artifact
locations as absolute ``file://…/mlartifacts/…`` URIs, so a copied or moved home would keep
reading — and writing — the artifacts of the home it came from. `rehome` rewrites every such
URI to the ``mlartifacts`` folder beside the database in force, once per process and store."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

#: (table, column) pairs of the MLflow 3 sqlite schema that hold artifact locations.
URI_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
MARK = "/mlartifacts/"
_DONE: set[Path] = set()
_LOCK = threading.Lock()


def rehome(database: Path) -> int:
    """Point every ``file://…/mlartifacts/<rest>`` location in the sqlite store `database` at
    ``<its folder>/mlartifacts/<rest>``; the number of values rewritten (0 when in place)."""
    database = database.resolve()
    with _LOCK:
        if database in _DONE or not database.exists():
            return 0
        here = (database.parent / "mlartifacts").as_uri() + "/"
        changed = 0
        with sqlite3.connect(database, timeout=30) as con:
            tables = {
                r[0] for r in con.execute("select name from sqlite_master where type='table'")
            }
            for table, column in URI_COLUMNS:
                if table not in tables:
                    continue
                cols = {r[1] for r in con.execute(f"pragma table_info({table})")}
                if column not in cols:
                    continue
                rows = con.execute(
                    f"select rowid, {column} from {table} where {column} like ? "
                    f"and {column} not like ?",
                    (f"file:%{MARK}%", f"{here}%"),
                ).fetchall()
                for rowid, value in rows:
                    fixed = here + value[value.rindex(MARK) + len(MARK) :]
                    con.execute(f"update {table} set {column} = ? where rowid = ?", (fixed, rowid))
                changed += len(rows)
        _DONE.add(database)
        return changed
