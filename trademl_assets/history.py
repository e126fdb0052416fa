"""A sleeve's history in the lake: every registered snapshot (`<model_asset>` rows) and every
promotion (`<sleeve>_champion` rows), and the point-in-time lookups on them — the champion and
the challenger as of a session (never a later one) — plus a per-run model download cache."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import Lake
from resources.mlflow import CHAMPION, MlflowResource

CHAMPION_SCHEMA = {
    "date": pl.Date,
    "version": pl.String,
    "previous_champion": pl.String,
    "run_id": pl.String,
    "model_uri": pl.String,
}


def promote_passed(
    context: dg.AssetExecutionContext,
    model_rows: pl.DataFrame,
    mlflow: MlflowResource,
    name: str,
    history: pl.DataFrame,
) -> pl.DataFrame:
    """Record each row's version as champion as of its date (its gate passed); the rows of the
    champion history this writes.

    `champion` moves forward only: a row dated before the newest promotion in `history` (a
    backfill of an earlier session) becomes that session's champion for scoring, but the
    alias stays on the newer model.
    """
    newest = history.get_column("date").max() if history.height else None
    known, rows = history, []
    for row in model_rows.sort("date").iter_rows(named=True):
        reasons = {"verdict": str(row.get("verdict") or "passed"), "as_of": str(row["date"])}
        backfill = newest is not None and row["date"] < newest
        if backfill:
            before = champion_as_of(known, row["date"])
            previous = before["version"] if before else None
            mlflow.promote(name, row["version"], reasons, move_alias=False)
            context.log.info(
                f"{name} v{row['version']} is champion as of {row['date']} (a backfill: "
                f"`champion` stays on the promotion of {newest})"
            )
        else:
            before_version = mlflow.alias_version(name, CHAMPION)
            previous = str(before_version.version) if before_version else None
            mlflow.promote(name, row["version"], reasons)
            newest = row["date"]
            context.log.info(f"{name} v{row['version']} is champion as of {row['date']}")
        rows.append(
            {
                "date": row["date"],
                "version": str(row["version"]),
                "previous_champion": previous,
                "run_id": row["run_id"],
                "model_uri": row.get("model_uri"),
            }
        )
        known = pl.concat([known, pl.DataFrame(rows[-1:], schema=CHAMPION_SCHEMA)])
    return pl.DataFrame(rows, schema=CHAMPION_SCHEMA)


def rollback_rows(
    mlflow: MlflowResource,
    spec: Any,
    history: pl.DataFrame,
    lake: Lake,
    sessions: list[dt.date],
    reason: str,
) -> pl.DataFrame:
    """Move the registry's `champion` back to `previous_champion` and the history rows that
    make it the champion as of each of `sessions` (scoring reads the history, not the alias):
    the restored version's run and model URI come from the rows that registered it."""
    if not sessions:
        raise ValueError(f"{spec.name}: a rollback needs a session")
    demoted, restored = mlflow.rollback(spec.name, {"reason": reason, "as_of": str(sessions[0])})
    known = history.filter(pl.col("version") == restored)
    if known.height == 0:
        rows = model_rows(lake, spec.model_key)
        known = rows.filter(pl.col("version") == restored)
    if known.height == 0:
        raise ValueError(
            f"{spec.name}: v{restored} is `previous_champion` in the registry but neither "
            f"{spec.champion_key} nor {spec.model_key} in the lake records it"
        )
    last = known.row(-1, named=True)
    return pl.DataFrame(
        [
            {
                "date": d,
                "version": restored,
                "previous_champion": demoted,
                "run_id": last["run_id"],
                "model_uri": last["model_uri"],
            }
            for d in sessions
        ],
        schema=CHAMPION_SCHEMA,
    )


def champion_history(lake: Lake, champion_asset: str) -> pl.DataFrame:
    """Every promotion recorded by `champion_asset`, oldest first."""
    keys = lake.partitions(champion_asset)
    if not keys:
        return pl.DataFrame(schema=CHAMPION_SCHEMA)
    return lake.scan(champion_asset, keys).collect().cast(CHAMPION_SCHEMA).sort("date")


def champion_as_of(history: pl.DataFrame, session: dt.date) -> dict[str, Any] | None:
    """The champion promoted most recently on or before `session` (never a later one)."""
    known = history.filter(pl.col("date") <= session)
    return known.row(-1, named=True) if known.height else None


def model_rows(lake: Lake, model_asset: str) -> pl.DataFrame:
    """Every snapshot `model_asset` registered (rows with a version), oldest first."""
    keys = lake.partitions(model_asset)
    if not keys:
        return pl.DataFrame(schema={"date": pl.Date, "version": pl.String})
    rows = lake.scan(model_asset, keys).collect()
    return rows.filter(pl.col("version").is_not_null()).sort("date", maintain_order=True)


def challenger_as_of(
    registered: pl.DataFrame, history: pl.DataFrame, session: dt.date
) -> dict[str, Any] | None:
    """The newest version trained as of `session` when it is not the champion as of it
    (the challenger a shadow book trades); None otherwise."""
    known = registered.filter(pl.col("date") <= session)
    if "event" in known.columns:  # promotions after a shadow record are not new versions
        known = known.filter(pl.col("event") == "trained")
    if known.height == 0:
        return None
    newest = known.row(-1, named=True)
    champ = champion_as_of(history, session)
    if champ is not None and str(champ["version"]) == str(newest["version"]):
        return None
    return newest


def model_trials(lake: Lake, model_asset: str) -> dict[str, int]:
    """{version: n_trials} of every snapshot `model_asset` registered (for DSR deflation)."""
    rows = model_rows(lake, model_asset)
    if "n_trials" not in rows.columns:
        return {}
    return {str(v): int(n) for v, n in rows.select("version", "n_trials").iter_rows()}


class ModelCache:
    """Downloads each model version once per run and opens it with `loader`."""

    def __init__(self, mlflow: MlflowResource, loader: Any, tmp: str) -> None:
        self._mlflow, self._loader, self._tmp = mlflow, loader, Path(tmp)
        self._cache: dict[str, Any] = {}

    def get(self, row: dict[str, Any]) -> Any:
        version = str(row["version"])
        if version not in self._cache:
            local = self._mlflow.download(row["model_uri"], self._tmp / f"v{version}")
            self._cache[version] = self._loader(local)
        return self._cache[version]
