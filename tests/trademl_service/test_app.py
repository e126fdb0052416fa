"""The training service's HTTP contract, against a real MLflow store and a recording stand-in
for the Dagster webserver (the real one is in tests/integration/test_training_service.py):
401 / 404 / 422 before anything is launched, one launch per version key, a registered
version answered at once with the result schema, run status and model listings."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import polars as pl
import pytest
from fastapi.testclient import TestClient

from resources.mlflow import MlflowResource
from trademl.lake import Lake
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG, version_key
from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_sessions, snapshot_window
from trademl_service.app import KEY_TAG, Backend, create_app
from trademl_service.dagster_api import RunInfo

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YEAR = SNAPSHOT_YEARS.get_last_partition_key()


@dataclass
class FakeDagster:
    """Records launches; runs are what the test says they are."""

    launched: list[tuple[str, str, dict]] = field(default_factory=list)
    runs: dict[str, RunInfo] = field(default_factory=dict)

    configs: list[dict | None] = field(default_factory=list)

    def launch(
        self, job: str, partition: str, tags: dict[str, str], run_config: dict | None = None
    ) -> str:
        run_id = f"run-{len(self.launched) + 1}"
        self.launched.append((job, partition, tags))
        self.configs.append(run_config)
        self.runs[run_id] = RunInfo(run_id, "QUEUED", job, dict(tags))
        return run_id

    def in_flight(self, tag: str, value: str) -> str | None:
        for r in self.runs.values():
            if r.tags.get(tag) == value and r.status in {"QUEUED", "STARTED"}:
                return r.run_id
        return None

    def run(self, run_id: str) -> RunInfo | None:
        return self.runs.get(run_id)


@pytest.fixture
def service(tmp_path):
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(
        f"extends: local\nmlflow: {{tracking_uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n"
        f"storage: {{lake_root: {tmp_path / 'lake'}}}\nlstm: {{train_years: 1}}\n"
        "agents: {train_years: 1}\n"
    )
    dagster = FakeDagster()
    backend = Backend(dagster, str(cfg))
    return TestClient(create_app(TOKEN, backend)), dagster, backend


def _bars(backend: Backend, year: str) -> None:
    """Bars for every session of the year's window (what training reads)."""
    sessions = snapshot_sessions(year, backend.settings().lstm.train_years)
    frame = pl.DataFrame({"date": sessions, "symbol": "AAA", "close": 1.0})
    Lake(backend.settings().lake_root).write_partitions(
        "bars", frame, [d.isoformat() for d in sessions], "date"
    )


def _register_agent(backend: Backend, key: str, run_id: str, names: list[str]) -> str:
    """A version as `ppo_lstm_agent` registers it (tested in tests/trademl_assets)."""
    s = backend.settings()
    window = snapshot_window(YEAR, s.agents.train_years)
    mlflow = MlflowResource.from_settings(s)
    with mlflow.start_run(
        asset="ppo_lstm_agent", partition=YEAR, dagster_run_id=run_id, data_fingerprint="f"
    ) as run:
        run.log_metrics({"held_out_sharpe": 1.1, "policy_loss": -0.02})
        uri = run.log_model_files(_model_dir(), "model")
    version = mlflow.register(run.run_id, uri, "ppo_lstm")
    mlflow.tag_version(
        "ppo_lstm",
        version,
        {
            VERSION_KEY_TAG: key,
            "trademl.window_start": window[0],
            "trademl.window_end": window[1],
            "trademl.promoted": False,
            "trademl.prior_version": "",
            "trademl.mode": "full",
            "trademl.symbols_used": ",".join(names),
            "dagster.run_id": run_id,
        },
    )
    return version


def _register(backend: Backend, year: str, run_id: str = "") -> str:
    """A version as `lstm_snapshot` registers it: a run with metrics, its model files, the
    version's tags (the asset itself is tested in tests/trademl_assets/test_snapshots.py)."""
    s = backend.settings()
    window = snapshot_window(year, s.lstm.train_years)
    mlflow = MlflowResource.from_settings(s)
    with mlflow.start_run(
        asset="lstm_snapshot", partition=year, dagster_run_id=run_id, data_fingerprint="f"
    ) as run:
        run.log_metrics({"val_mse": 0.001, "zero_mse": 0.0012})
        uri = run.log_model_files(_model_dir(), "model")
    version = mlflow.register(run.run_id, uri, "lstm")
    mlflow.tag_version(
        "lstm",
        version,
        {
            VERSION_KEY_TAG: version_key("lstm", s, window),
            "trademl.window_start": window[0],
            "trademl.window_end": window[1],
            "trademl.promoted": True,
            "trademl.prior_version": "",
            "trademl.snapshot": year,
            "dagster.run_id": run_id,
        },
    )
    return version


def _model_dir():
    import tempfile
    from pathlib import Path

    out = Path(tempfile.mkdtemp(prefix="lstm-model-"))
    (out / "lstm.pt").write_bytes(b"weights")
    return out


def test_no_token_no_service_and_no_answer(service):
    client, dagster, _ = service
    assert client.post("/train/lstm", json={}).status_code == 401
    wrong = client.post("/train/lstm", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/models/lstm").status_code == 401
    assert dagster.launched == []
    with pytest.raises(ValueError, match="TRADEML_API_TOKEN"):
        create_app("", service[2])
    out = subprocess.run(
        [sys.executable, "-m", "trademl_service"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "TRADEML_API_TOKEN": ""},
    )
    assert out.returncode == 2 and "TRADEML_API_TOKEN" in out.stderr


def test_bad_bodies_and_unknown_partitions_are_refused_before_any_launch(service):
    client, dagster, _ = service
    bad = client.post("/train/lstm", json={"yeer": 2024}, headers=AUTH)
    assert bad.status_code == 422 and "yeer" in bad.text
    assert client.post("/train/lstm", json={"year": "soon"}, headers=AUTH).status_code == 422
    unknown = client.post("/train/lstm", json={"year": 1990}, headers=AUTH)
    assert unknown.status_code == 404 and "1990" in unknown.json()["detail"]
    assert client.get("/runs/nope", headers=AUTH).status_code == 404
    assert client.get("/models/gpt", headers=AUTH).status_code == 404
    assert client.post("/train/gpt", json={}, headers=AUTH).status_code == 404
    assert client.post("/train/a2c_lstm/full", json={}, headers=AUTH).status_code == 404
    mode = client.post("/train/ppo_lstm/sideways", json={}, headers=AUTH)
    assert mode.status_code == 422 and "mode" in mode.text
    no_bars = client.post("/train/patchtst", json={}, headers=AUTH)
    assert no_bars.status_code == 409 and "patchtst" in no_bars.json()["detail"]
    assert dagster.launched == []


def test_a_window_without_bars_is_refused_with_the_backfill_to_run(service):
    client, dagster, backend = service
    refused = client.post("/train/lstm", json={}, headers=AUTH)
    first, last = snapshot_window(YEAR, backend.settings().lstm.train_years)
    assert refused.status_code == 409
    assert f"--select bars --partition-range {first}...{last}" in refused.json()["detail"]
    assert dagster.launched == []


def test_one_launch_per_version_key_then_the_registered_version_at_once(service):
    client, dagster, backend = service
    _bars(backend, YEAR)
    first = client.post("/train/lstm", json={"year": int(YEAR)}, headers=AUTH)
    assert first.status_code == 202
    body = first.json()
    assert dagster.launched == [("lstm_train", YEAR, {KEY_TAG: body["version_key"]})]
    again = client.post("/train/lstm", json={}, headers=AUTH)  # the latest year: the same
    assert again.status_code == 202 and again.json()["run_id"] == body["run_id"]
    assert len(dagster.launched) == 1
    status = client.get(body["status_url"], headers=AUTH).json()
    assert (status["status"], status["result"]) == ("QUEUED", None)

    version = _register(backend, YEAR, run_id=body["run_id"])
    run = dagster.runs[body["run_id"]]
    dagster.runs[body["run_id"]] = RunInfo(run.run_id, "SUCCESS", run.job, run.tags)
    done = client.get(body["status_url"], headers=AUTH).json()
    assert done["status"] == "SUCCESS"
    result = done["result"]
    window = snapshot_window(YEAR, backend.settings().lstm.train_years)
    assert result == {
        "model": "lstm",
        "version": version,
        "data_window_start": window[0],
        "data_window_end": window[1],
        "metrics": {"val_mse": 0.001, "zero_mse": 0.0012},
        "promoted": True,
        "prior_version": None,
        "cached": False,
        "mode": None,
        "symbols_used": None,
    }
    cached = client.post("/train/lstm", json={"year": int(YEAR)}, headers=AUTH)
    assert cached.status_code == 200 and cached.json() == {**result, "cached": True}
    assert len(dagster.launched) == 1
    listing = client.get("/models/lstm", headers=AUTH).json()
    assert [v["version"] for v in listing["versions"]] == [version]


def test_other_settings_are_another_version(service, tmp_path):
    client, dagster, backend = service
    _register(backend, YEAR)
    _bars(backend, YEAR)
    assert client.post("/train/lstm", json={}, headers=AUTH).status_code == 200
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(
        cfg.read_text().replace("lstm: {train_years: 1}", "lstm: {train_years: 1, hidden: 64}")
    )
    assert client.post("/train/lstm", json={}, headers=AUTH).status_code == 202
    assert len(dagster.launched) == 1


def test_an_agent_request_needs_its_snapshots_then_trains_once_with_its_mode(service):
    client, dagster, backend = service
    _bars(backend, YEAR)
    before = str(int(YEAR) - 1)
    missing = client.post("/train/ppo_lstm/full", json={}, headers=AUTH)
    assert missing.status_code == 409
    assert f"lstm snapshots of {before}" in missing.json()["detail"]
    assert "POST /train/lstm" in missing.json()["detail"]
    _register(backend, before)  # the snapshot of the year before, under today's settings
    no_champion = client.post("/train/ppo_lstm/finetune", json={}, headers=AUTH)
    assert no_champion.status_code == 400 and "full mode first" in no_champion.json()["detail"]
    assert dagster.launched == []

    launched = client.post("/train/ppo_lstm/full", json={"year": int(YEAR)}, headers=AUTH)
    assert launched.status_code == 202, launched.text
    body = launched.json()
    assert dagster.launched == [("ppo_lstm_train", YEAR, {KEY_TAG: body["version_key"]})]
    assert dagster.configs == [{"ops": {"ppo_lstm_agent": {"config": {"mode": "full"}}}}]
    again = client.post("/train/ppo_lstm/full", json={}, headers=AUTH)
    assert again.status_code == 202 and again.json()["run_id"] == body["run_id"]
    assert len(dagster.launched) == 1

    names = ["AAA", "BBB"]
    version = _register_agent(backend, body["version_key"], body["run_id"], names)
    run = dagster.runs[body["run_id"]]
    dagster.runs[body["run_id"]] = RunInfo(run.run_id, "SUCCESS", run.job, run.tags)
    result = client.get(body["status_url"], headers=AUTH).json()["result"]
    assert result["model"] == "ppo_lstm" and result["version"] == version
    assert (result["mode"], result["symbols_used"], result["cached"]) == ("full", names, False)
    assert result["metrics"] == {"held_out_sharpe": 1.1, "policy_loss": -0.02}
    cached = client.post("/train/ppo_lstm/full", json={}, headers=AUTH)
    assert cached.status_code == 200 and cached.json() == {**result, "cached": True}
    listing = client.get("/models/ppo_lstm", headers=AUTH).json()
    assert [(v["version"], v["mode"]) for v in listing["versions"]] == [(version, "full")]
