"""What every model sleeve's assets share: moving `champion` after a passed gate, and finding
the champion a session may use (the latest promotion dated on or before it)."""

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import Lake, LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from trademl_assets.partitions import SESSIONS, SINGLE_RUN

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
    reason_keys: tuple[str, ...],
    history: pl.DataFrame,
) -> pl.DataFrame:
    """Record each row's version as champion as of its date (the gate passed, or this asset
    would not run); the rows of the champion history this writes.

    `champion` moves forward only: a row dated before the newest promotion in `history` (a
    backfill of an earlier session) becomes that session's champion for scoring, but the
    alias stays on the newer model.
    """
    newest = history.get_column("date").max() if history.height else None
    known, rows = history, []
    for row in model_rows.sort("date").iter_rows(named=True):
        reasons = {k: f"{row[k]:.4g}" for k in reason_keys}
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
                "version": row["version"],
                "previous_champion": previous,
                "run_id": row["run_id"],
                "model_uri": row.get("model_uri"),
            }
        )
        known = pl.concat([known, pl.DataFrame(rows[-1:], schema=CHAMPION_SCHEMA)])
    return pl.DataFrame(rows, schema=CHAMPION_SCHEMA)


def champion_asset(
    *, model_asset: str, registered: str, group: str, reason_keys: tuple[str, ...]
) -> dg.AssetsDefinition:
    """`<model_asset>_champion`: runs only when the model's blocking gate passed, and moves
    `champion` of the registered model `registered` (the old one keeps
    `previous_champion`); its partitions are the sleeve's promotion history."""
    key = model_asset.removesuffix("_model") + "_champion"

    @dg.asset(
        name=key,
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        group_name=group,
        io_manager_key="lake",
        ins={"model": dg.AssetIn(model_asset)},
        metadata={"partition_column": "date"},
        kinds={"mlflow"},
        description=f"Moves `champion` of `{registered}` to the version that passed its gate.",
    )
    def _champion(
        context: dg.AssetExecutionContext,
        model: pl.DataFrame,
        mlflow: MlflowResource,
        lake_store: LakeResource,
    ) -> dg.Output[pl.DataFrame]:
        history = champion_history(lake_store.lake, key)
        out = promote_passed(context, model, mlflow, registered, reason_keys, history)
        return dg.Output(out, metadata={"champion": out.get_column("version")[-1]})

    return _champion


def register_judged(
    mlflow: MlflowResource,
    *,
    name: str,
    run_id: str,
    model_uri: str,
    as_of: dt.date,
    passed: bool,
    check: str,
    reason: str,
    failures: list[str],
) -> dict[str, Any]:
    """Register a new `challenger` version; a failed gate tags it refused (with `reason`) and
    records the failure. Returns the row every sleeve's model asset starts from."""
    version = mlflow.register(run_id, model_uri, name)
    if not passed:
        mlflow.refuse(name, version, {check: reason})
        failures.append(f"{as_of}: {reason}")
    return {
        "date": as_of,
        "version": version,
        "run_id": run_id,
        "model_uri": model_uri,
        "passed_gate": passed,
    }


def gate_result(check_name: str, failures: list[str], ok: str) -> dg.AssetCheckResult:
    """The blocking gate's verdict over a run's as-of sessions (any failure blocks)."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(failures[:6]) or ok,
    )


def champion_history(lake: Lake, champion_asset: str) -> pl.DataFrame:
    """Every promotion recorded by `champion_asset`, oldest first."""
    keys = lake.partitions(champion_asset)
    if not keys:
        return pl.DataFrame(schema=CHAMPION_SCHEMA)
    return lake.scan(champion_asset, keys).collect().sort("date")


def model_trials(lake: Lake, model_asset: str) -> dict[str, int]:
    """{version: n_trials} of every snapshot `model_asset` registered (for DSR deflation)."""
    keys = lake.partitions(model_asset)
    if not keys:
        return {}
    rows = lake.scan(model_asset, keys).select("version", "n_trials").collect()
    return {str(v): int(n) for v, n in rows.iter_rows()}


def champion_as_of(history: pl.DataFrame, session: dt.date) -> dict[str, Any] | None:
    """The champion promoted most recently on or before `session` (never a later one)."""
    known = history.filter(pl.col("date") <= session)
    return known.row(-1, named=True) if known.height else None


class ModelCache:
    """Downloads each champion version once per run and opens it with `loader`."""

    def __init__(self, mlflow: MlflowResource, loader: Any, tmp: str) -> None:
        self._mlflow, self._loader, self._tmp = mlflow, loader, Path(tmp)
        self._cache: dict[str, Any] = {}

    def get(self, row: dict[str, Any]) -> Any:
        version = row["version"]
        if version not in self._cache:
            local = self._mlflow.download(row["model_uri"], self._tmp / f"v{version}")
            self._cache[version] = self._loader(local)
        return self._cache[version]
