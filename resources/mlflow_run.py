"""An open MLflow run as the platform logs to it (`TrackedRun`), and MLflow loaded lazily:
mlflow takes ~2 s to import, and loading the Dagster code location must not pay for it."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from resources.mlflow_secrets import _check_file, _check_mapping, _check_nested, _secret_env_values
from trademl.lazy import settled

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


# mlflow takes ~2 s to import, so it (and every constant taken from it) is loaded on first use:
# loading the Dagster code location must not pay for it.
@functools.cache
def _mlflow() -> ModuleType:
    with settled():
        import mlflow

    return mlflow


@functools.cache
def _status(name: str) -> str:
    """MLflow's string for `RunStatus.<name>` ("FINISHED", "FAILED")."""
    from mlflow.entities import RunStatus

    return RunStatus.to_string(getattr(RunStatus, name))


@functools.cache
def _codes(*names: str) -> frozenset[str]:
    """`MlflowException.error_code` values of the named `databricks_pb2` error codes."""
    from mlflow.protos import databricks_pb2 as pb

    return frozenset(pb.ErrorCode.Name(getattr(pb, n)) for n in names)


class TrackedRun:
    """Handle on one open MLflow run; every write goes through the secret filter."""

    def __init__(self, client: MlflowClient, run_id: str, experiment_id: str) -> None:
        self._client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log params (stringified, truncated to MLflow's limit); refuse secret keys/values."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        _check_mapping("param", params)
        batch = [Param(str(k), str(v)[:MAX_PARAM_VAL_LENGTH]) for k, v in params.items()]
        if batch:
            self._client.log_batch(self.run_id, params=batch, synchronous=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metrics at one step; NaN and ±inf are stored as-is rather than raising."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch, synchronous=True)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set run tags (stringified, truncated to MLflow's limit); refuse secret keys/values."""
        from mlflow.entities import RunTag
        from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

        _check_mapping("tag", tags)
        batch = [RunTag(str(k), str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
        if batch:
            self._client.log_batch(self.run_id, tags=batch, synchronous=True)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a local file or directory, refusing content that holds a secret env value."""
        local = Path(path)
        _check_file(local, _secret_env_values())
        if local.is_dir():
            self._client.log_artifacts(self.run_id, str(local), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(local), artifact_path)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Write a JSON/YAML artifact (by extension), refusing secret-named keys or values."""
        _check_nested("artifact entry", obj, "", _secret_env_values())
        self._client.log_dict(self.run_id, obj, artifact_file)

    def log_onnx_model(self, onnx_bytes: bytes, name: str = "model") -> str:
        """Log an ONNX graph as an MLflow 3 model (`log_model(name=…)`) of this active run.

        Only inside `start_run`, where this run is the active fluent run.
        """
        import mlflow.onnx
        import onnx

        active = _mlflow().active_run()
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError("log_onnx_model must be called inside this run's start_run block")
        proto = onnx.load_model_from_string(onnx_bytes)
        # one self-contained file: scorers load the graph from bytes, without a side .data file
        info = mlflow.onnx.log_model(
            proto,
            name=name,
            pip_requirements=["onnxruntime", "numpy"],
            save_as_external_data=False,
        )
        return info.model_uri

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        """Save a matplotlib/plotly figure as an artifact of this run."""
        self._client.log_figure(self.run_id, fig, artifact_file)

    def log_model_files(self, directory: str | os.PathLike[str], name: str) -> str:
        """Log a directory as an MLflow 3 LoggedModel of this run (for models without an
        MLflow flavor, e.g. saved NeuralForecast models); returns its ``models:/<id>`` URI."""
        local = Path(directory)
        _check_file(local, _secret_env_values())
        model = self._client.create_logged_model(
            self.experiment_id, name=name, source_run_id=self.run_id
        )
        self._client.log_model_artifacts(model.model_id, str(local))
        self._client.finalize_logged_model(model.model_id, "READY")
        return f"models:/{model.model_id}"
