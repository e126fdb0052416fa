"""The FastAPI app: POST /train/lstm and /train/patchtst (forecaster snapshots),
POST /train/{ppo,sac}_{lstm,patchtst}/{full,finetune} (allocation agents), GET /runs/{id},
GET /models/{name}; a bearer token on every route.

A training request resolves its partition (a snapshot year; the latest by default) and its
window from the settings, then its version key (settings, window, universe, code version —
`trademl.models.forecasts.snapshot.version_key`). A version registered under that key is the
answer at once (200, ``cached: true``); a run already launched for it is answered with its id
(202); a window without bars is refused (409, naming the backfill); otherwise the
`<model>_train` job is launched through Dagster's GraphQL API (202 with the run id).
An agent request resolves the same way through `trademl_assets.agents.plan_agent`, which also
names what must exist first: the forecaster snapshots of the years before (409) and, for a
finetune, a champion (400). `GET /runs/{id}` reports the run's status and, once it succeeded,
the result.
"""

import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from resources.mlflow import CHAMPION, MlflowResource
from trademl.config import Settings, load_settings
from trademl.lake import Lake, session_keys
from trademl.models.agents.snapshot import AGENTS
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG, version_key
from trademl_assets.agents import SYMBOLS_TAG, PlanError, missing_bars, plan_agent
from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_sessions, snapshot_window
from trademl_service.dagster_api import DagsterAPI, DagsterError

#: Models the service trains: name → the Dagster job that trains its snapshot.
MODELS = {"lstm": "lstm_train", "patchtst": "patchtst_train"}
#: Agents the service trains: name → the Dagster job of its `<name>_agent` asset.
AGENT_JOBS = {name: f"{name}_train" for name in AGENTS}
ALL_JOBS = MODELS | AGENT_JOBS
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
    mode: str | None = Field(None, description="Agents: full or finetune.")
    symbols_used: list[str] | None = Field(None, description="Agents: the names it trades.")


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
        mode=tags.get("trademl.mode"),
        symbols_used=tags[SYMBOLS_TAG].split(",") if tags.get(SYMBOLS_TAG) else None,
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

    def partition_of(model: str, year: int | None) -> str:
        keys = SNAPSHOT_YEARS.get_partition_keys()
        partition = str(year) if year is not None else (keys[-1] if keys else "")
        if partition not in keys:
            shown = f"{keys[0]}…{keys[-1]}" if keys else "none yet"
            raise HTTPException(
                404, f"no {model} partition {partition!r}: snapshot years are {shown}"
            )
        return partition

    def launch(job: str, model: str, partition: str, key: str, config: Any, response: Response):
        try:
            run_id = backend.dagster.in_flight(KEY_TAG, key) or backend.dagster.launch(
                job, partition, {KEY_TAG: key}, config
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

    @app.post(
        "/train/{name}/{mode}",
        dependencies=[Depends(authorized)],
        responses={200: {"model": TrainResult}, 202: {"model": Launched}},
    )
    def train_agent(
        name: str, mode: Literal["full", "finetune"], req: TrainRequest, response: Response
    ) -> TrainResult | Launched:
        if name not in AGENT_JOBS:
            raise HTTPException(404, f"no agent {name!r}; the service trains {sorted(AGENT_JOBS)}")
        partition = partition_of(name, req.year)
        mlflow = backend.mlflow()
        s = backend.settings()
        try:
            plan = plan_agent(s, mlflow, name, mode, partition)
        except PlanError as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        same = mlflow.version_tagged(name, VERSION_KEY_TAG, plan.key)
        if same is not None:
            return result_of(mlflow, name, same, cached=True)
        gap = missing_bars(plan, set(Lake(s.lake_root).partitions("bars")))
        if gap:
            raise HTTPException(409, gap)
        config = {"ops": {f"{name}_agent": {"config": {"mode": mode}}}}
        return launch(AGENT_JOBS[name], name, partition, plan.key, config, response)

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
        partition = partition_of(model, req.year)
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
        return launch(MODELS[model], model, partition, key, None, response)

    @app.get("/runs/{run_id}", dependencies=[Depends(authorized)])
    def run_status(run_id: str) -> dict[str, Any]:
        try:
            run = backend.dagster.run(run_id)
        except DagsterError as exc:
            raise dagster_down(exc) from exc
        if run is None or run.job not in ALL_JOBS.values():
            raise HTTPException(404, f"no training run {run_id!r}")
        out: dict[str, Any] = {"run_id": run.run_id, "status": run.status, "result": None}
        model = next(m for m, job in ALL_JOBS.items() if job == run.job)
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
        if name not in ALL_JOBS:
            raise HTTPException(404, f"no model {name!r}; the service trains {sorted(ALL_JOBS)}")
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
                    "mode": v.tags.get("trademl.mode"),
                }
                for v in sorted(versions, key=lambda v: int(v.version))
            ],
        }

    return app
