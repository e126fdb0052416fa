"""The steps of one sleeve training that the factories in `sleeves` share: the model table's
schema, the champion a snapshot faces, logging a `Trained` to MLflow, and the gate's check."""

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from resources.mlflow import MlflowResource
from trademl.config import Settings
from trademl.models.sleeve import Trained
from trademl.provenance import UNKNOWN_SHA, data_fingerprint, git_sha

GATE = "promotion_gate"


def model_row_schema(row_metrics: tuple[str, ...]) -> dict[str, pl.DataType]:
    """Columns of a sleeve's model table: one row per as-of snapshot (or promotion)."""
    return {
        "date": pl.Date(),
        "model": pl.String(),
        "version": pl.String(),
        "run_id": pl.String(),
        "model_uri": pl.String(),
        "passed_gate": pl.Boolean(),
        "held": pl.Boolean(),
        "event": pl.String(),
        "n_trials": pl.Int64(),
        "verdict": pl.String(),
        "info": pl.String(),
        "training_key": pl.String(),
        **{k: pl.Float64() for k in row_metrics},
    }


def training_key(
    spec_name: str, as_of: dt.date, s: Settings, input_prints: Mapping[str, str]
) -> str | None:
    """What makes a training reproducible: the sleeve, the session, the resolved settings
    (the home aside: a copied home is the same config), the code version and the inputs'
    content. None when the code version is unknown (no git, no TRADEML_GIT_SHA): then
    nothing can be proven identical, and the sleeve trains."""
    code = git_sha()
    if code == UNKNOWN_SHA:
        return None
    blob = json.dumps(
        {
            "sleeve": spec_name,
            "as_of": str(as_of),
            "code": code,
            "settings": s.model_dump(mode="json", exclude={"home"}),
            "inputs": dict(sorted(input_prints.items())),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def input_prints(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The content fingerprint of every input frame a training reads."""
    return {name: data_fingerprint(frame) for name, frame in inputs.items()}


def champion_metrics(
    mlflow: MlflowResource, champ: dict[str, Any] | None, passed: list[tuple[dt.date, dict]]
) -> dict[str, Any] | None:
    """The champion as of the session: promoted on or before it, or passed earlier in this
    run — never the alias holder of today, which may have trained on later sessions."""
    metrics = mlflow.client().get_run(champ["run_id"]).data.metrics if champ else None
    if passed and (champ is None or passed[-1][0] >= champ["date"]):
        metrics = passed[-1][1]
    return metrics


def log_trained(run: Any, trained: Trained, as_of: dt.date, tmp: Path) -> str:
    """Log everything of `trained` to the open MLflow run; returns the model's URI."""
    run.log_params({"as_of": as_of, **trained.params})
    run.log_metrics({k: float(v) for k, v in trained.metrics.items() if isinstance(v, int | float)})
    for path, fig in trained.figures.items():
        run.log_figure(fig, path)
        _release(fig)
    for path, obj in trained.documents.items():
        run.log_dict(obj, path)
    tables = dict(trained.tables)
    if trained.oof is not None:
        tables["oof/oof.parquet"] = trained.oof
    for path, frame in tables.items():
        local = tmp / path
        local.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(local)
        run.log_artifact(local, artifact_path=str(Path(path).parent))
    if trained.layout is not None:
        run.log_dict(json.loads(trained.layout.to_json()), "oof/layout.json")
    if trained.onnx is not None:
        run.log_onnx_model(trained.onnx, name="onnx")
    trained.save(tmp / "model")
    return run.log_model_files(tmp / "model", "model")


def _release(fig: Any) -> None:
    """Drop a logged figure from pyplot's registry (it can still be saved for metadata)."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def gate_result(model_key: str, verdicts: list[tuple[dt.date, str, dict]]) -> Any:
    """The verdict over the run's as-of sessions: failed bars with the value and the bar."""
    failed = [(d, text, bad) for d, text, bad in verdicts if bad or text.startswith("not")]
    meta: dict[str, Any] = {}
    for d, _, bad in failed[-1:]:
        meta = {
            name: dg.MetadataValue.text(f"{c.value:.4g} vs bar {c.op} {c.threshold:.4g}")
            for name, c in bad.items()
        }
        meta["session"] = dg.MetadataValue.text(str(d))
    return dg.AssetCheckResult(
        check_name=GATE,
        asset_key=model_key,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(f"{d}: {t}" for d, t, _ in failed[:6])
        or (verdicts[-1][1] if verdicts else "every bar passed"),
        metadata=meta,
    )


def as_float(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def as_json(d: Mapping[str, Any]) -> str:
    return json.dumps(dict(d), sort_keys=True, default=str)
