"""The UI's path end to end: `dagster dev` on 127.0.0.1 (webserver + daemon, as `make dev`
starts them) over a small synthetic market whose bars history was backfilled through the
CLI; GraphQL lists the assets, checks, jobs, schedules and sensors, and a `daily` run of the
latest session launched through GraphQL ends SUCCESS. The server is stopped by its process
group, always."""

import json
import subprocess
import sys
import time

import pytest
import requests

from tests.integration.test_cli import REPO
from tests.integration.ui import backfill_bars, dagster_dev, home_env

pytestmark = pytest.mark.integration

SMALL = "extends: local\ndata: {symbols: 20, seed: 5}\n"


def _query(url: str, query: str, variables: dict | None = None) -> dict:
    r = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=60)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


LIST = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        jobs { name }
        schedules { name }
        sensors { name }
        assetNodes { assetKey { path } hasAssetChecks assetChecksOrError {
          ... on AssetChecks { checks { name } } } }
      }
    }
  }
}
"""

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

STATUS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""


@pytest.fixture
def server(tmp_path):
    env = home_env(tmp_path, SMALL)
    probe = [
        sys.executable,
        "-c",
        "from trademl_assets.partitions import SESSIONS, FEATURE_WINDOW; "
        "k = SESSIONS.get_partition_keys(); print(k[-(FEATURE_WINDOW + 5)], k[-2], k[-1])",
    ]
    first, before, latest = subprocess.run(
        probe, env=env, cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    # the bars history the latest session's features read, backfilled as a user would
    backfill_bars(env, first, before)
    log = tmp_path / "dagster-dev.log"
    with dagster_dev(env, log) as base:
        yield f"{base}/graphql", latest, log


def test_graphql_lists_the_graph_and_a_daily_run_of_the_latest_session_succeeds(server):
    url, latest, log = server
    (repo,) = _query(url, LIST)["repositoriesOrError"]["nodes"]
    assets = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
    assert {"bars", "features", "alpha_scores", "sized_weights", "orders", "rl_trajectories"} <= (
        assets
    )
    checks = {
        c["name"]
        for a in repo["assetNodes"]
        if a["hasAssetChecks"]
        for c in a["assetChecksOrError"].get("checks", [])
    }
    assert {"quality", "promotion_gate"} <= checks
    assert {"daily", "trade", "alpha_train", "sizing_train", "rescore"} <= {
        j["name"] for j in repo["jobs"]
    }
    assert "daily_schedule" in {s["name"] for s in repo["schedules"]}
    assert {"sleeve_retrain_sensor", "new_files_sensor", "trade_after_daily_sensor"} <= {
        s["name"] for s in repo["sensors"]
    }

    params = {
        "selector": {
            "repositoryLocationName": repo["location"]["name"],
            "repositoryName": repo["name"],
            "jobName": "daily",
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": latest}]},
    }
    launched = _query(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", json.dumps(launched)
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + 600, None
    while time.monotonic() < deadline:
        status = _query(url, STATUS, {"id": run_id})["runOrError"].get("status")
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(3)
    assert status == "SUCCESS", f"daily run {run_id}: {status}\n" + log.read_text()[-4000:]
