"""Convert a lake of Hive-partitioned parquet files (``<asset>/date=K/part-0.parquet``, the
layout before Delta) into Delta tables, in place, one table at a time.

Each table's folder is first renamed to ``.<asset>.parquet-old``; the Delta table is written
from it in one commit (empty sessions recorded as written) and only then is the old folder
deleted. A run that stops half way is resumed by running it again: a leftover old folder is
converted again from scratch. Side files the old layout kept inside a table's folder move
beside the tables (``bars/_ground_truth.json`` → ``bars_ground_truth.json``; ``bars/_qc`` →
the table ``bars_qc``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from trademl.lake import LEDGER, Lake, LakeError

PART = "part-0.parquet"
_OLD = ".{}.parquet-old"


@dataclass(frozen=True, slots=True)
class Migrated:
    """One converted table: its name, sessions (None: unpartitioned), rows and column."""

    table: str
    sessions: int | None
    rows: int
    column: str | None


def _partition_column(frames: dict[str, pl.DataFrame], folder: Path) -> str:
    """The column whose value is the partition key in every file (`date` first, then `t1`)."""
    sample = next((f for f in frames.values() if f.height), None)
    if sample is None:
        return "date"
    candidates = [c for c in ("date", "t1") if c in sample.columns] + [
        c for c, t in sample.schema.items() if t == pl.Date and c not in ("date", "t1")
    ]
    for column in candidates:
        if all(
            f.height == 0
            or f.get_column(column).cast(pl.Date).cast(pl.String).unique().to_list() == [k]
            for k, f in frames.items()
        ):
            return column
    raise LakeError(
        f"{folder}: no column holds each file's partition key (tried {candidates}); "
        "this folder is not a table of a TradeML lake"
    )


def _convert(lake: Lake, name: str, old: Path) -> Migrated:
    """Write the Delta table `name` from the parquet folder `old` (one commit)."""
    target = Path(lake.uri(name))
    if target.exists():
        shutil.rmtree(target)  # a half-written table from an interrupted run
    if (old / PART).exists():
        frame = pl.read_parquet(old / PART)
        lake.write(name, frame)
        return Migrated(name, None, frame.height, None)
    frames = {
        p.name.removeprefix("date="): pl.read_parquet(p / PART, hive_partitioning=False)
        for p in sorted(old.iterdir())
        if p.name.startswith("date=") and (p / PART).exists()
    }
    if not frames:
        raise LakeError(f"{old}: neither {PART} nor date=…/{PART} partitions; not a lake table")
    column = _partition_column(frames, old)
    keys = sorted(frames)
    for key in keys:
        dt.date.fromisoformat(key)  # a bad folder name fails here, before anything is written
    frame = pl.concat(list(frames.values()), how="vertical_relaxed")
    lake.write_partitions(name, frame, keys, column)
    return Migrated(name, len(keys), frame.height, column)


def _pending(root: Path) -> list[tuple[str, Path]]:
    """(table, folder) pairs still in the parquet layout, old folders of interrupted runs too."""
    out: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") and entry.name.endswith(".parquet-old"):
            out[entry.name[1 : -len(".parquet-old")]] = entry
        elif (
            entry.is_dir()
            and not entry.name.startswith((".", "_"))
            and not (entry / "_delta_log").exists()
            and entry.name != LEDGER
        ):
            out.setdefault(entry.name, entry)
    return sorted(out.items())


def migrate(root: str | Path) -> list[Migrated]:
    """Convert every parquet table under the local lake `root` to Delta; returns what moved.

    Running it again on a converted lake does nothing (idempotent).
    """
    base = Path(root)
    if not base.is_dir():
        raise LakeError(f"{base}: no lake folder there (expected $TRADEML_HOME/lake)")
    lake = Lake(base)
    done: list[Migrated] = []
    for name, folder in _pending(base):
        old = base / _OLD.format(name)
        if folder != old:
            folder.rename(old)
        truth = old / "_ground_truth.json"
        if truth.exists():
            truth.replace(base / f"{name}_ground_truth.json")
        qc = old / "_qc"
        if qc.is_dir():
            done.append(_convert(lake, f"{name}_qc", qc))
            shutil.rmtree(qc)
        done.append(_convert(lake, name, old))
        shutil.rmtree(old)
    return done
