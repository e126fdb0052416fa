"""MLflow tracking + registry resource: one run per asset materialization, aliases only.

Replaces dagster-mlflow's legacy `mlflow_tracking` resource, which leaves runs RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from resources.lake import read_versions
from resources.mlflow_home import rehome
from resources.mlflow_run import TrackedRun, _codes, _mlflow, _status
from resources.mlflow_secrets import _check_mapping, check_not_secret
from trademl.lake import READ_TAG
from trademl.lazy import settled
from trademl.provenance import git_sha

if TYPE_CHECKING:
    from mlflow.entities import LoggedModel
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from trademl.config import Settings

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
#: Set once this process made its first MLflow client (`MlflowResource.client`).
_FIRST_CLIENT = threading.Event()


class MlflowResource(dg.ConfigurableResource):
    """MLflow client wrapper: runs always end FINISHED/FAILED; registry uses aliases only."""

    tracking_uri: str
    registry_uri: str | None = None
    experiment: str = "trademl"
    #: The MLflow and Dagster UIs' addresses, for links between assets and runs (both ways).
    ui_url: str = "http://127.0.0.1:5000"
    dagster_url: str = "http://127.0.0.1:3000"

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowResource:
        """The tracking store, registry, experiment and UI links the settings name."""
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            registry_uri=settings.mlflow.registry_uri,
            experiment=settings.mlflow.experiment,
            ui_url=settings.mlflow.ui_url,
            dagster_url=settings.mlflow.dagster_url,
        )

    def run_url(self, run_id: str) -> str:
        """The MLflow UI page of a run."""
        experiment_id = self.client().get_run(run_id).info.experiment_id
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, name: str, version: str | int) -> str:
        """The MLflow UI page of a registered model version."""
        return f"{self.ui_url.rstrip('/')}/#/models/{name}/versions/{version}"

    def asset_url(self, asset: str, partition: str | None) -> str:
        """The Dagster UI page of an asset (at a partition)."""
        first = asset.split(",")[0]
        url = f"{self.dagster_url.rstrip('/')}/assets/{first}"
        return f"{url}?partition={partition}" if partition else url

    def client(self) -> MlflowClient:
        """A client bound to the configured stores (never to process-global MLflow state); a
        sqlite store copied or moved with its home is first pointed at its own artifacts."""
        database = self._sqlite_path()
        if database is not None:
            rehome(database)
        mlflow = _mlflow()
        # the process's first client imports and sets up its store's SQLAlchemy models
        with settled() if not _FIRST_CLIENT.is_set() else contextlib.nullcontext():
            _FIRST_CLIENT.set()
            return mlflow.MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self._registry_uri()
            )

    def _registry_uri(self) -> str:
        return self.registry_uri or self.tracking_uri

    def _sqlite_path(self) -> Path | None:
        """The sqlite tracking database's file, None for any other store."""
        if not self.tracking_uri.startswith("sqlite:"):
            return None
        from sqlalchemy.engine import make_url

        database = make_url(self.tracking_uri).database
        if not database or database == ":memory:":
            return None
        return Path(database).resolve()

    def store_is_empty(self) -> bool:
        """True when nothing was ever registered: a sqlite registry whose file does not
        exist yet. Lets a daily run skip opening (and creating) the store just to find no
        models; any other store answers False and is queried."""
        registry = self._registry_uri()
        if registry != self.tracking_uri or not registry.startswith("sqlite:"):
            return False
        path = self._sqlite_path()
        return path is not None and not path.exists()

    def _artifact_location(self) -> str | None:
        """`mlartifacts/<experiment>` beside a sqlite db; the store's default otherwise."""
        database = self._sqlite_path()
        if database is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.experiment).strip("._") or "experiment"
        return (database.parent / "mlartifacts" / slug).as_uri()

    def _experiment_id(self, client: MlflowClient) -> str:
        """Id of the configured experiment, created on first use (safe against a racing creator)."""
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            try:
                return client.create_experiment(self.experiment, self._artifact_location())
            except _mlflow().MlflowException as e:
                if e.error_code not in _codes("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise
                experiment = client.get_experiment_by_name(self.experiment)
                assert experiment is not None
        if experiment.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {self.experiment!r} is deleted; restore it or purge it"
            )
        return experiment.experiment_id

    @contextmanager
    def start_run(
        self,
        *,
        asset: str,
        partition: str | None,
        dagster_run_id: str,
        data_fingerprint: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Iterator[TrackedRun]:
        """Open a provenance-tagged run, active in the fluent API too (for `log_model`).

        Ends FINISHED on normal exit, FAILED on any exception (which propagates).
        """
        mlflow = _mlflow()
        if mlflow.active_run() is not None:
            raise RuntimeError(
                "a fluent MLflow run is already active in this thread; end it before start_run"
            )
        run_tags: dict[str, str] = {k: str(v) for k, v in (tags or {}).items()}
        _check_mapping("tag", run_tags)
        if run_name is not None:
            check_not_secret("run name", "run_name", run_name)
        run_tags.update(
            {
                "dagster.run_id": dagster_run_id,
                "dagster.asset": asset,
                "git.sha": git_sha(),
                "data.fingerprint": data_fingerprint,
            }
        )
        if partition is not None:
            run_tags["dagster.partition"] = partition
        run_tags["dagster.asset_url"] = self.asset_url(asset, partition)
        default_name = asset if partition is None else f"{asset}@{partition}"
        client = self.client()
        experiment_id = self._experiment_id(client)
        run = client.create_run(experiment_id, tags=run_tags, run_name=run_name or default_name)
        run_id = run.info.run_id
        try:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self._registry_uri())
            mlflow.set_experiment(experiment_id=experiment_id)
            mlflow.start_run(run_id=run_id)
        except BaseException:
            client.set_terminated(run_id, _status("FAILED"))
            raise
        status = _status("FAILED")
        try:
            yield TrackedRun(client, run_id, experiment_id)
            status = _status("FINISHED")
        finally:
            self._end(client, run_id, status)

    @staticmethod
    def _end(client: MlflowClient, run_id: str, status: str) -> None:
        """Pop every fluent run this block left behind, then stamp our run's final status."""
        mlflow = _mlflow()
        try:
            ended_ours = False
            while (active := mlflow.active_run()) is not None:
                ended_ours = ended_ours or active.info.run_id == run_id
                mlflow.end_run(status)
            if not ended_ours:
                client.set_terminated(run_id, status)
        except Exception:
            if status == _status("FINISHED"):
                raise
            # Keep the body's exception as the one that propagates.
            logger.exception("could not mark MLflow run %s as %s", run_id, status)

    def start_run_for(
        self,
        context: dg.AssetExecutionContext,
        *,
        data_fingerprint: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> AbstractContextManager[TrackedRun]:
        """`start_run` with asset key, partition ("A...B" for ranges) and run id from Dagster."""
        keys = sorted(context.selected_asset_keys, key=lambda k: k.to_user_string())
        asset = ",".join("/".join(k.path) for k in keys) or "/".join(context.asset_key.path)
        partition: str | None = None
        if context.has_partition_key_range:
            key_range = context.partition_key_range
            partition = (
                key_range.start
                if key_range.start == key_range.end
                else f"{key_range.start}...{key_range.end}"
            )
        elif context.has_partition_key:
            partition = str(context.partition_key)
        # the Delta version and sessions of every lake table this step read: the exact data
        # behind the run, re-read with `Lake.training_data(run.data.tags)`
        step = context.get_step_execution_context().step.key
        reads = {
            f"{READ_TAG}{t}": r.as_tag() for t, r in read_versions(context.run_id, step).items()
        }
        return self.start_run(
            asset=asset,
            partition=partition,
            dagster_run_id=context.run_id,
            data_fingerprint=data_fingerprint,
            run_name=run_name,
            tags={**reads, **(tags or {})},
        )

    # ---- registry: aliases only, never stages -------------------------------------------

    def register(self, run_id: str | None, model_uri_or_artifact_path: str, name: str) -> str:
        """Create a version of `name` from a run's model (or a models:/ URI), alias challenger."""
        client = self.client()
        try:
            client.create_registered_model(name)
        except _mlflow().MlflowException as e:
            if e.error_code not in _codes("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        source, run_id, model_id = self._resolve_source(client, run_id, model_uri_or_artifact_path)
        version = client.create_model_version(
            name=name, source=source, run_id=run_id, model_id=model_id
        )
        if model_id is not None:
            self._link_logged_model(client, model_id, name, str(version.version))
        client.set_registered_model_alias(name, CHALLENGER, str(version.version))
        return str(version.version)

    @staticmethod
    def _resolve_source(
        client: MlflowClient, run_id: str | None, uri_or_path: str
    ) -> tuple[str, str | None, str | None]:
        """(storage source, run id, logged-model id), resolved with *our* client.

        MLflow's sqlite registry resolves `models:/<id>` sources through a client on the global
        tracking URI; passing the concrete artifact location avoids that hidden dependency.
        """
        if uri_or_path.startswith("models:/"):
            ref = uri_or_path.removeprefix("models:/").strip("/")
            if "/" in ref or "@" in ref:
                if "@" in ref:
                    model_name, alias = ref.rsplit("@", 1)
                    mv = client.get_model_version_by_alias(model_name, alias)
                else:
                    model_name, ver = ref.split("/", 1)
                    mv = client.get_model_version(model_name, ver)
                source = client.get_model_version_download_uri(model_name, str(mv.version))
                return source, run_id or mv.run_id, getattr(mv, "model_id", None)
            logged = client.get_logged_model(ref)
            return logged.artifact_location, run_id or logged.source_run_id, logged.model_id
        if uri_or_path.startswith("runs:/"):
            from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

            run_id, artifact_path = RunsArtifactRepository.parse_runs_uri(uri_or_path)
        else:
            if run_id is None:
                raise ValueError("register needs a run_id when given an artifact path")
            artifact_path = uri_or_path
        artifact_path = (artifact_path or "").strip("/")
        run = client.get_run(run_id)
        # MLflow 3: `log_model(name=...)` creates a LoggedModel with its own artifact location.
        # Check it first: listing a run's artifacts also lists its logged models' files.
        if "'" in artifact_path:
            raise ValueError(f"invalid model artifact path {artifact_path!r}")
        candidates: list[LoggedModel] = []
        page_token: str | None = None
        while True:
            page = client.search_logged_models(
                [run.info.experiment_id],
                filter_string=f"name = '{artifact_path}'",
                page_token=page_token,
            )
            candidates += [m for m in page if m.source_run_id == run_id]
            if not (page_token := page.token):
                break
        if candidates:
            logged = max(candidates, key=lambda m: m.creation_timestamp)
            return logged.artifact_location, run_id, logged.model_id
        # MLflow 2 style: the model files live in the run's own artifacts.
        listed = {f.path for f in client.list_artifacts(run_id, artifact_path)}
        if f"{artifact_path}/MLmodel" not in listed:
            raise ValueError(f"run {run_id} has no model logged under {artifact_path!r}")
        return f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", run_id, None

    @staticmethod
    def _link_logged_model(client: MlflowClient, model_id: str, name: str, version: str) -> None:
        """Record the registered version on the logged model, as `mlflow.register_model` does."""
        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

        existing = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
        links = [*json.loads(existing or "[]"), {"name": name, "version": version}]
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(links)})

    def download(self, model_uri: str, dst: str | os.PathLike[str]) -> Path:
        """Download a model's files (``models:/<id>`` or a registered version's source)."""
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self._registry_uri())
        source, _, _ = self._resolve_source(self.client(), None, model_uri)
        key, before = (
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
            os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"),
        )
        os.environ[key] = "false"  # no progress bar in asset logs for a few small files
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst))
        finally:
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before
        return Path(local)

    def alias_version(self, name: str, alias: str) -> ModelVersion | None:
        """The version carrying `alias`, or None if the model or the alias does not exist."""
        try:
            return self.client().get_model_version_by_alias(name, alias)
        except _mlflow().MlflowException as e:
            # A missing model is RESOURCE_DOES_NOT_EXIST, but the sqlite registry reports a
            # missing alias as INVALID_PARAMETER_VALUE ("... alias champion not found.").
            if e.error_code in _codes("RESOURCE_DOES_NOT_EXIST") or (
                e.error_code in _codes("INVALID_PARAMETER_VALUE")
                and "not found" in e.message.lower()
            ):
                return None
            raise

    def version_tagged(self, name: str, key: str, value: str) -> ModelVersion | None:
        """The newest version of `name` whose tag `key` is `value` (None: none, or no model)."""
        if "'" in value or "`" in key:
            raise ValueError(f"version_tagged: bad tag {key!r}={value!r}")
        found = self.client().search_model_versions(f"name='{name}' and tags.`{key}`='{value}'")
        return max(found, key=lambda v: int(v.version)) if found else None

    def tag_version(self, name: str, version: str | int, tags: Mapping[str, object]) -> None:
        """Set plain tags on a registered version (checked: no secret values)."""
        values = {k: str(v) for k, v in tags.items()}
        _check_mapping("model version tag", values)
        client = self.client()
        for key, value in values.items():
            client.set_model_version_tag(name, str(version), key, value)

    def promote(
        self, name: str, version: str | int, reasons: dict[str, str], *, move_alias: bool = True
    ) -> None:
        """Make `version` champion (old champion → previous_champion), recording why.

        `move_alias=False` records the passed promotion on the version only: a backfilled
        session's champion, older than the one holding the alias, which stays put.
        """
        client = self.client()
        version = str(version)
        client.get_model_version(name, version)  # fail before moving anything
        self._tag_version(client, name, version, "promotion", reasons)
        if not move_alias:
            return
        current = self.alias_version(name, CHAMPION)
        if current is not None and str(current.version) != version:
            client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(current.version))
        client.set_registered_model_alias(name, CHAMPION, version)

    def rollback(self, name: str, reasons: dict[str, str]) -> tuple[str, str]:
        """Move `champion` back to `previous_champion`: (demoted version, restored version).
        The demoted version is tagged ``rollback.*`` with why; `previous_champion` is cleared,
        so a second rollback cannot bounce back to the version just demoted."""
        current = self.alias_version(name, CHAMPION)
        previous = self.alias_version(name, PREVIOUS_CHAMPION)
        if current is None or previous is None:
            missing = CHAMPION if current is None else PREVIOUS_CHAMPION
            raise ValueError(
                f"{name}: no `{missing}` alias in the registry, so there is nothing to roll back "
                f"to; a rollback needs a champion promoted over an earlier one"
            )
        client = self.client()
        demoted, restored = str(current.version), str(previous.version)
        self._tag_version(client, name, demoted, "rollback", reasons)
        client.set_registered_model_alias(name, CHAMPION, restored)
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
        return demoted, restored

    def refuse(self, name: str, version: str | int, reasons: dict[str, str]) -> None:
        """Record why a challenger was NOT promoted; no alias moves."""
        client = self.client()
        version = str(version)
        client.get_model_version(name, version)
        self._tag_version(client, name, version, "promotion.refused", reasons)

    @staticmethod
    def _tag_version(
        client: MlflowClient, name: str, version: str, prefix: str, reasons: Mapping[str, str]
    ) -> None:
        from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH

        tags = {f"{prefix}.{k}": str(v) for k, v in reasons.items()}
        _check_mapping("model version tag", tags)
        for key, value in tags.items():
            client.set_model_version_tag(
                name, version, key, value[:MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH]
            )
