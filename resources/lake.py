"""The lake: Hive-partitioned parquet per asset and session, written atomically.

Layout: ``<root>/<asset>/date=YYYY-MM-DD/part-0.parquet`` (unpartitioned assets:
``<root>/<asset>/part-0.parquet``). The IO manager is range-aware: one output
that covers many sessions (a single-run backfill) is split on its partition
column and written one file per session; a lookback input arrives as a
``pl.LazyFrame`` over every session in the window.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import uuid
from collections.abc import Sequence

import dagster as dg
import polars as pl
from upath import UPath

PART_FILE = "part-0.parquet"
LOCAL_PROTOCOLS = ("", "file", "local")


class LakeError(RuntimeError):
    """The lake is missing partitions or got a frame it cannot place."""


def serialize(frame: pl.DataFrame) -> bytes:
    """Parquet bytes of `frame`; identical frames give identical bytes."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", compression_level=3, statistics=True)
    return buf.getvalue()


def write_atomic(path: UPath, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file, the new one, or none.

    Locally: a temp file in the same folder, fsync, then rename. Object stores
    (s3://…) publish a PUT atomically, so one write suffices there.
    """
    if path.protocol not in LOCAL_PROTOCOLS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
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


class Lake:
    """Paths and reads of the lake, usable without Dagster (reports, notebooks, tests)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = UPath(root)

    def partition_path(self, asset: str, partition: str | None) -> UPath:
        base = self.root / asset
        return base / f"date={partition}" / PART_FILE if partition else base / PART_FILE

    def partitions(self, asset: str) -> list[str]:
        """Sessions (YYYY-MM-DD) that have a written partition of `asset`."""
        base = self.root / asset
        if not base.exists():
            return []
        keys = [p.name.removeprefix("date=") for p in base.iterdir() if p.name.startswith("date=")]
        return sorted(k for k in keys if (base / f"date={k}" / PART_FILE).exists())

    def scan(self, asset: str, partitions: Sequence[str] | None) -> pl.LazyFrame:
        """A LazyFrame over the given partitions (None: the unpartitioned file)."""
        keys: list[str | None] = list(partitions) if partitions is not None else [None]
        paths = [self.partition_path(asset, k) for k in keys]
        absent = [
            k or "(unpartitioned)" for k, p in zip(keys, paths, strict=True) if not p.exists()
        ]
        if absent:
            shown = ", ".join(absent[:5]) + (
                f" (+{len(absent) - 5} more)" if len(absent) > 5 else ""
            )
            raise LakeError(
                f"lake {self.root}/{asset}: {len(absent)} of {len(keys)} needed partitions are "
                f"not written ({shown}); materialize {asset} for them first"
            )
        return pl.scan_parquet([str(p) for p in paths], hive_partitioning=False)

    def scan_all(self, asset: str) -> pl.LazyFrame:
        """A LazyFrame over every written partition of `asset`."""
        keys = self.partitions(asset)
        if not keys:
            raise LakeError(f"lake {self.root}/{asset}: no partitions written yet")
        return self.scan(asset, keys)

    def write_partitions(
        self, asset: str, frame: pl.DataFrame, partitions: Sequence[str], column: str
    ) -> dict[str, int]:
        """Split `frame` on `column` and write one file per partition; returns rows per key.

        Every requested partition is written (an empty frame keeps the schema), and
        every row must fall in one: rows for sessions outside the run are an error.
        """
        if column not in frame.columns:
            raise LakeError(f"{asset}: output lacks the partition column {column!r}")
        keyed = frame.with_columns(pl.col(column).cast(pl.Date).cast(pl.String).alias("__key"))
        stray = keyed.filter(~pl.col("__key").is_in(list(partitions)))
        if stray.height:
            bad = stray.get_column("__key").unique().sort().head(3).to_list()
            raise LakeError(
                f"{asset}: {stray.height} rows have {column} outside the run's partitions "
                f"{partitions[0]}…{partitions[-1]}, e.g. {bad}"
            )
        groups = {
            k[0]: g.drop("__key") for k, g in keyed.partition_by("__key", as_dict=True).items()
        }
        empty = frame.clear()
        blobs = {k: serialize(groups.get(k, empty)) for k in partitions}
        for key, blob in blobs.items():
            write_atomic(self.partition_path(asset, key), blob)
        return {k: groups[k].height if k in groups else 0 for k in partitions}

    def write_json(self, name: str, obj: object) -> UPath:
        """Write a JSON file beside the tables (e.g. `bars_ground_truth.json`), never inside a
        table's folder: a table's folder holds the table and nothing else."""
        if "/" in name or not name.endswith(".json"):
            raise LakeError(f"{name!r}: expected a plain file name ending in .json")
        path = self.root / name
        write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())
        return path

    def write(self, asset: str, frame: pl.DataFrame) -> None:
        """Write an unpartitioned asset."""
        write_atomic(self.partition_path(asset, None), serialize(frame))


def _asset_name(key: dg.AssetKey) -> str:
    return "/".join(key.path)


class LakeResource(dg.ConfigurableResource):
    """The lake root (a local folder or s3://bucket/prefix), for assets that write side files."""

    root: str

    @property
    def lake(self) -> Lake:
        return Lake(self.root)


#: Input metadata flag: read the written partitions of a lookback and skip the unwritten ones.
MISSING_OK = "lake/missing_partitions_ok"


class LakeIOManager(dg.ConfigurableIOManager):
    """Range-aware parquet IO manager over the lake (local path or s3://…)."""

    store: LakeResource

    @property
    def lake(self) -> Lake:
        return self.store.lake

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        asset = _asset_name(context.asset_key)
        if not isinstance(obj, pl.DataFrame):
            raise LakeError(f"{asset}: the lake stores polars DataFrames, got {type(obj).__name__}")
        if not context.has_asset_partitions:
            self.lake.write(asset, obj)
            context.add_output_metadata({"lake_path": str(self.lake.partition_path(asset, None))})
            return
        column = (context.definition_metadata or {}).get("partition_column", "date")
        keys = list(context.asset_partition_keys)
        counts = self.lake.write_partitions(asset, obj, keys, column)
        context.add_output_metadata(
            {
                "partitions_written": len(counts),
                "lake_path": str(self.lake.root / asset),
                "empty_partitions": sum(1 for n in counts.values() if n == 0),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.LazyFrame | pl.DataFrame:
        upstream = context.upstream_output
        if upstream is None or upstream.asset_key is None:
            raise LakeError(f"input {context.name!r} has no upstream asset to read from the lake")
        asset = _asset_name(upstream.asset_key)
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else None
        if keys is not None and not keys:
            raise LakeError(f"{asset}: the input {context.name!r} maps to no partitions")
        if keys is not None and (context.definition_metadata or {}).get(MISSING_OK):
            # a trailing window may start before the first materialized session: read what exists
            written = set(self.lake.partitions(asset))
            present = [k for k in keys if k in written]
            if not present:
                raise LakeError(
                    f"{asset}: none of the {len(keys)} partitions {keys[0]}…{keys[-1]} of input "
                    f"{context.name!r} is written; materialize {asset} first"
                )
            if len(present) < len(keys):
                context.log.info(
                    f"{asset}: reading {len(present)} written of {len(keys)} lookback partitions"
                )
            keys = present
        lf = self.lake.scan(asset, keys)
        wants_frame = getattr(context.dagster_type, "typing_type", None) is pl.DataFrame
        return lf.collect() if wants_frame else lf


def session_keys(sessions: Sequence[dt.date]) -> list[str]:
    """Partition keys of sessions."""
    return [d.isoformat() for d in sessions]
