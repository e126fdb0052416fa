"""The lake in Dagster: a resource for its root and a range-aware IO manager over its Delta
tables (`trademl.lake`).

One output that covers many sessions (a single-run backfill) is one Delta commit replacing
exactly those sessions; a lookback input arrives as a ``pl.LazyFrame`` over every session in
the window, pinned to the table version it was read at. The versions a step read are kept
for the MLflow run it logs (`read_versions`), so a model's training data can be re-read
exactly (`Lake.scan(..., version=v)`).
"""

from __future__ import annotations

import contextlib
import threading

import dagster as dg
import polars as pl

from trademl.lake import LEDGER, Lake, LakeError, TableRead, session_keys, write_atomic

__all__ = [
    "LEDGER",
    "MISSING_OK",
    "Lake",
    "LakeError",
    "LakeIOManager",
    "LakeResource",
    "TableRead",
    "read_versions",
    "session_keys",
    "write_atomic",
]

_READS: dict[str, dict[str, TableRead]] = {}
_READS_LOCK = threading.Lock()


def read_versions(run_id: str, step: str) -> dict[str, TableRead]:
    """What the inputs of step `step` of Dagster run `run_id` read, per lake table: its Delta
    version and session span (a step's inputs load in the process that computes it)."""
    with _READS_LOCK:
        return dict(sorted(_READS.get(f"{run_id}/{step}", {}).items()))


def _note_read(run_id: str, step: str, asset: str, read: TableRead) -> None:
    with _READS_LOCK:
        _READS.setdefault(f"{run_id}/{step}", {})[asset] = read


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
    """Range-aware Delta Lake IO manager over the lake (local path or s3://…)."""

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
            context.add_output_metadata(
                {"lake_path": self.lake.uri(asset), "delta_version": self.lake.version(asset)}
            )
            return
        column = (context.definition_metadata or {}).get("partition_column", "date")
        keys = list(context.asset_partition_keys)
        counts = self.lake.write_partitions(asset, obj, keys, column)
        context.add_output_metadata(
            {
                "partitions_written": len(counts),
                "lake_path": self.lake.uri(asset),
                "delta_version": self.lake.version(asset),
                "empty_partitions": sum(1 for n in counts.values() if n == 0),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.LazyFrame | pl.DataFrame:
        upstream = context.upstream_output
        if upstream is None or upstream.asset_key is None:
            raise LakeError(f"input {context.name!r} has no upstream asset to read from the lake")
        asset = _asset_name(upstream.asset_key)
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else None
        # one version for the whole read: a concurrent writer cannot change what this step sees
        version = self.lake.version(asset)
        if keys is not None and not keys:
            raise LakeError(f"{asset}: the input {context.name!r} maps to no partitions")
        if keys is not None and (context.definition_metadata or {}).get(MISSING_OK):
            # a trailing window may start before the first materialized session: read what exists
            written = set(self.lake.partitions(asset, version))
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
        lf = self.lake.scan(asset, keys, version=version)
        with contextlib.suppress(dg.DagsterInvariantViolationError):  # no step: nothing to log
            span = (keys[0], keys[-1]) if keys else None
            step = context.step_context
            _note_read(step.run_id, step.step.key, asset, TableRead(version, span))
        wants_frame = getattr(context.dagster_type, "typing_type", None) is pl.DataFrame
        return lf.collect() if wants_frame else lf
