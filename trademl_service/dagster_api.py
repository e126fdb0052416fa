"""The few GraphQL calls the service makes to the Dagster webserver: find the job, launch a
partitioned run with tags, read a run's status and tags, and find runs in flight by tag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]

_JOBS = """
query { repositoriesOrError { __typename
  ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
  ... on PythonError { message } } }
"""
_LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } }
  ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
_RUN = """
query($id: ID!) { runOrError(runId: $id) { __typename
  ... on Run { runId status jobName tags { key value } } } }
"""
_RUNS = """
query($filter: RunsFilter!) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status } } } }
"""


class DagsterError(RuntimeError):
    """The Dagster webserver is unreachable or refused the request."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str
    job: str
    tags: dict[str, str]


@dataclass
class DagsterAPI:
    """GraphQL client of the webserver at `url` (e.g. http://127.0.0.1:3000)."""

    url: str
    timeout: float = 30.0

    def _query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            r = requests.post(
                f"{self.url.rstrip('/')}/graphql",
                json={"query": query, "variables": variables or {}},
                timeout=self.timeout,
            )
            r.raise_for_status()
        except requests.RequestException as exc:
            raise DagsterError(
                f"the Dagster webserver at {self.url} did not answer ({exc}); start it "
                "(make dev) or point TRADEML_DAGSTER_URL at it"
            ) from exc
        body = r.json()
        if body.get("errors"):
            raise DagsterError(f"Dagster GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]

    def _selector(self, job: str) -> dict[str, str]:
        repos = self._query(_JOBS)["repositoriesOrError"]
        for repo in repos.get("nodes", []):
            if job in {j["name"] for j in repo["jobs"]}:
                return {
                    "repositoryLocationName": repo["location"]["name"],
                    "repositoryName": repo["name"],
                    "jobName": job,
                }
        raise DagsterError(f"no code location served by {self.url} has the job {job!r}")

    def launch(
        self,
        job: str,
        partition: str,
        tags: dict[str, str],
        run_config: dict[str, Any] | None = None,
    ) -> str:
        """Launch `job` for `partition` with `tags` (and `run_config`); the new run's id."""
        all_tags = {"dagster/partition": partition, **tags}
        params: dict[str, Any] = {
            "selector": self._selector(job),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        if run_config:
            params["runConfigData"] = run_config
        out = self._query(_LAUNCH, {"params": params})["launchRun"]
        if out["__typename"] != "LaunchRunSuccess":
            raise DagsterError(f"Dagster refused to launch {job} {partition}: {out}")
        return str(out["run"]["runId"])

    def run(self, run_id: str) -> RunInfo | None:
        """A run's status and tags (None: no such run)."""
        out = self._query(_RUN, {"id": run_id})["runOrError"]
        if out["__typename"] != "Run":
            return None
        tags = {t["key"]: t["value"] for t in out["tags"]}
        return RunInfo(out["runId"], out["status"], out["jobName"], tags)

    def in_flight(self, tag: str, value: str) -> str | None:
        """The id of a queued or running run tagged `tag` = `value`, if any."""
        flt = {"tags": [{"key": tag, "value": value}], "statuses": IN_FLIGHT}
        results = self._query(_RUNS, {"filter": flt})["runsOrError"].get("results", [])
        return str(results[0]["runId"]) if results else None
