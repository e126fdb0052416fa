"""The training service as `make serve` runs it, against `dagster dev` as `make dev` runs it,
over a small synthetic market whose bars were backfilled through the CLI: a request launches
the `lstm_train` run through GraphQL (202), the run's status comes back until SUCCESS with the
result schema, the same request is then answered at once from the registry (200, cached, the
same version — one version in all). Then the documented client (`python -m
trademl_service.client`) trains the snapshot of the year before and a PPO agent on it
(`ppo_lstm/full`), whose result names its mode and the names it trades; a finetune without a
champion is refused (400). Both servers are stopped by their process groups."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.integration.test_cli import REPO
from tests.integration.ui import backfill_bars, dagster_dev, free_port, home_env, wait_for

pytestmark = pytest.mark.integration
TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_request_trains_once_through_dagster_and_then_answers_from_the_registry(tmp_path):
    env = home_env(
        tmp_path,
        "extends: local\ndata: {symbols: 20, seed: 5}\n"
        "lstm: {train_years: 1, seq_len: 20, hidden: 8, max_epochs: 3, patience: 2,"
        " batch_size: 64}\n"
        "agents: {train_years: 1, top_n: 5, held_out_weeks: 10, full_steps: 600,"
        " episode_weeks: 10, net_arch: [16], promotion: {min_sharpe: 10.0}}\n",
    )
    probe = (
        "from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_window; "
        "y = SNAPSHOT_YEARS.get_last_partition_key(); print(y, *snapshot_window(y, 1))"
    )
    year, first, last = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    lead = subprocess.run(
        [sys.executable, "-c", probe.replace(", 1))", ", 2))")],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    backfill_bars(env, lead, last)  # two years: the agent's state reads the year before
    with dagster_dev(env, tmp_path / "dagster-dev.log") as base:
        port = free_port()
        log = (tmp_path / "service.log").open("w")
        service = subprocess.Popen(
            [sys.executable, "-m", "trademl_service", "--port", str(port)],
            env={**env, "TRADEML_API_TOKEN": TOKEN, "TRADEML_DAGSTER_URL": base},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{url}/openapi.json", service, tmp_path / "service.log", "the service")
            assert requests.post(f"{url}/train/lstm", json={}, timeout=30).status_code == 401
            launched = requests.post(f"{url}/train/lstm", json={}, headers=AUTH, timeout=60)
            assert launched.status_code == 202, launched.text
            body = launched.json()
            assert body["partition"] == year
            deadline, status = time.monotonic() + 600, {}
            while time.monotonic() < deadline:
                status = requests.get(url + body["status_url"], headers=AUTH, timeout=30).json()
                if status["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
                    break
                time.sleep(2)
            assert status["status"] == "SUCCESS", (tmp_path / "dagster-dev.log").read_text()[-4000:]
            result = status["result"]
            assert (result["data_window_start"], result["data_window_end"]) == (first, last)
            assert result["cached"] is False and result["prior_version"] is None
            assert {"val_mse", "zero_mse", "val_rank_ic"} <= set(result["metrics"])
            again = requests.post(
                f"{url}/train/lstm", json={"year": int(year)}, headers=AUTH, timeout=30
            )
            assert again.status_code == 200
            assert again.json() == {**result, "cached": True}
            models = requests.get(f"{url}/models/lstm", headers=AUTH, timeout=30).json()
            assert [v["version"] for v in models["versions"]] == [result["version"]]

            client = {**env, "TRADEML_API_TOKEN": TOKEN, "TRADEML_API_URL": url}

            def train(path: str, *args: str) -> subprocess.CompletedProcess:
                return subprocess.run(
                    [sys.executable, "-m", "trademl_service.client", path, *args],
                    env=client,
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )

            before = str(int(year) - 1)
            snap = train("lstm", "--year", before)
            assert snap.returncode == 0, snap.stderr
            assert json.loads(snap.stdout)["data_window_end"].startswith(before)
            agent = train("ppo_lstm/full")
            assert agent.returncode == 0, (
                agent.stderr + (tmp_path / "dagster-dev.log").read_text()[-4000:]
            )
            out = json.loads(agent.stdout)
            assert (out["model"], out["mode"], out["cached"]) == ("ppo_lstm", "full", False)
            assert len(out["symbols_used"]) == 5 and out["data_window_end"] == last
            assert out["promoted"] is False  # a Sharpe floor of 10 is out of reach
            assert {"held_out_sharpe", "held_out_cagr", "policy_loss"} <= set(out["metrics"])
            refused = train("ppo_lstm/finetune")
            assert refused.returncode == 1 and "400" in refused.stderr
            assert "full mode first" in refused.stderr
        finally:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait(timeout=30)
            log.close()
