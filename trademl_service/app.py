"""The FastAPI app: POST /train/lstm and /train/patchtst, GET /runs/{id}, GET /models/{name};
a bearer token on every route.

A training request resolves its partition (a snapshot year; the latest by default) and its
window from the settings, then its version key (settings, window, universe, code version —
`trademl.models.forecasts.snapshot.version_key`). A version registered under that key is the
answer at once (200, ``cached: true``); a run already launched for it is answered with its id
(202); a window without bars is refused (409, naming the backfill); otherwise the
`<model>_train` job is launched through Dagster's GraphQL API (202 with the run id).
`GET /runs/{id}` reports the run's status and, once it succeeded, the result.
"""

import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from resources.mlflow import CHAMPION, MlflowResource
from trademl.config import Settings, load_settings
from trademl.lake import Lake, session_keys
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG, version_key
from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_sessions, snapshot_window
from trademl_service.dagster_api import DagsterAPI, DagsterError

#: Models the service trains: name → the Dagster job that trains its snapshot.
MODELS = {"lstm": "lstm_train", "patchtst": "patchtst_train"}
KEY_TAG = "trademl/version_key"
_BEARER = HTTPBearer(auto_error=False)


class TrainRequest(BaseModel):
    """A training request. Unknown fields are refused (422 naming them)."""

    model_config = ConfigDict(extra="forbid")
    year: int | None = Field(
        None,
        description="The snapshot's year end (trained on data up to it); the latest "
        "completed year when absent.",
    )


class TrainResult(BaseModel):
    """A registered version: what a finished (or cached) training answers."""

    model: str
    version: str
    data_window_start: str
    data_window_end: str
    metrics: dict[str, float]
    promoted: bool
    prior_version: str | None
    cached: bool = False


class Launched(BaseModel):
    """202: a Dagster run trains it; poll `GET /runs/{run_id}`."""

    run_id: str
    model: str
    partition: str
    version_key: str
    status_url: str


@dataclass
class Backend:
    """Where the service reads settings and versions, and launches runs."""

    dagster: DagsterAPI
    config_path: str | None = None

    def settings(self) -> Settings:
        return load_settings(self.config_path)

    def mlflow(self) -> MlflowResource:
        return MlflowResource.from_settings(self.settings())


def result_of(mlflow: MlflowResource, model: str, version: Any, cached: bool) -> TrainResult:
    """The answer for a registered version (its tags and its run's metrics)."""
    tags = version.tags
    metrics = mlflow.client().get_run(version.run_id).data.metrics if version.run_id else {}
    return TrainResult(
        model=model,
        version=str(version.version),
        data_window_start=tags.get("trademl.window_start", ""),
        data_window_end=tags.get("trademl.window_end", ""),
        metrics={k: float(v) for k, v in metrics.items()},
        promoted=tags.get("trademl.promoted") == "True",
        prior_version=tags.get("trademl.prior_version") or None,
        cached=cached,
    )


def create_app(token: str, backend: "Backend") -> FastAPI:
    """The service; refuses to exist without a token."""
    if not token:
        raise ValueError("the training service needs a bearer token: set TRADEML_API_TOKEN")
    app = FastAPI(title="TradeML training service", version="1")

    def authorized(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        given = creds.credentials.encode() if creds is not None else b""
        if not secrets.compare_digest(given, token.encode()):
            raise HTTPException(
                401,
                "a valid bearer token is required (Authorization: Bearer $TRADEML_API_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def dagster_down(exc: DagsterError) -> HTTPException:
        return HTTPException(503, str(exc))

    @app.post(
        "/train/{model}",
        dependencies=[Depends(authorized)],
        responses={200: {"model": TrainResult}, 202: {"model": Launched}},
    )
    def train(model: str, req: TrainRequest, response: Response) -> TrainResult | Launched:
        if model not in MODELS:
            raise HTTPException(404, f"no model {model!r}; the service trains {sorted(MODELS)}")
        s = backend.settings()
        years = getattr(s, model).train_years
        keys = SNAPSHOT_YEARS.get_partition_keys()
        partition = str(req.year) if req.year is not None else (keys[-1] if keys else "")
        if partition not in keys:
            shown = f"{keys[0]}…{keys[-1]}" if keys else "none yet"
            raise HTTPException(
                404, f"no {model} snapshot partition {partition!r}: snapshot years are {shown}"
            )
        window = snapshot_window(partition, years)
        key = version_key(model, s, window)
        mlflow = backend.mlflow()
        same = mlflow.version_tagged(model, VERSION_KEY_TAG, key)
        if same is not None:
            return result_of(mlflow, model, same, cached=True)
        sessions = snapshot_sessions(partition, years)
        missing = set(session_keys(sessions)) - set(Lake(s.lake_root).partitions("bars"))
        if missing:
            raise HTTPException(
                409,
                f"{len(missing)} of the {len(sessions)} sessions of the {model} {partition} window "
                f"{window[0]}…{window[1]} have no bars; backfill them first: dagster asset "
                "materialize -m trademl_jobs.definitions --select bars --partition-range "
                f"{min(missing)}...{max(missing)}",
            )
        try:
            run_id = backend.dagster.in_flight(KEY_TAG, key) or backend.dagster.launch(
                MODELS[model], partition, {KEY_TAG: key}
            )
        except DagsterError as exc:
            raise dagster_down(exc) from exc
        response.status_code = 202
        return Launched(
            run_id=run_id,
            model=model,
            partition=partition,
            version_key=key,
            status_url=f"/runs/{run_id}",
        )

    @app.get("/runs/{run_id}", dependencies=[Depends(authorized)])
    def run_status(run_id: str) -> dict[str, Any]:
        try:
            run = backend.dagster.run(run_id)
        except DagsterError as exc:
            raise dagster_down(exc) from exc
        if run is None or run.job not in MODELS.values():
            raise HTTPException(404, f"no training run {run_id!r}")
        out: dict[str, Any] = {"run_id": run.run_id, "status": run.status, "result": None}
        model = next(m for m, job in MODELS.items() if job == run.job)
        key = run.tags.get(KEY_TAG)
        if run.status == "SUCCESS" and key:
            mlflow = backend.mlflow()
            version = mlflow.version_tagged(model, VERSION_KEY_TAG, key)
            if version is not None:
                mine = version.tags.get("dagster.run_id") == run.run_id
                out["result"] = result_of(mlflow, model, version, cached=not mine).model_dump()
        return out

    @app.get("/models/{name}", dependencies=[Depends(authorized)])
    def model_versions(name: str) -> dict[str, Any]:
        if name not in MODELS:
            raise HTTPException(404, f"no model {name!r}; the service trains {sorted(MODELS)}")
        mlflow = backend.mlflow()
        champion = mlflow.alias_version(name, CHAMPION)
        versions = mlflow.client().search_model_versions(f"name='{name}'")
        return {
            "name": name,
            "champion": str(champion.version) if champion else None,
            "versions": [
                {
                    "version": str(v.version),
                    "snapshot": v.tags.get("trademl.snapshot"),
                    "data_window_start": v.tags.get("trademl.window_start"),
                    "data_window_end": v.tags.get("trademl.window_end"),
                    "promoted": v.tags.get("trademl.promoted") == "True",
                }
                for v in sorted(versions, key=lambda v: int(v.version))
            ],
        }

    return app
