"""Rolling a champion back: `python -m trademl_jobs.rollback <sleeve>` moves the registry's
`champion` alias back to `previous_champion`, tags the demoted version with why, and writes
the promotion-history row that makes the restored version the champion from that session on
(earlier sessions keep theirs); with no `previous_champion` it fails and says why."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from resources.lake import Lake
from resources.mlflow import CHAMPION, PREVIOUS_CHAMPION, MlflowResource
from trademl_assets.history import CHAMPION_SCHEMA, champion_as_of, champion_history
from trademl_assets.partitions import SESSIONS

KEYS = SESSIONS.get_partition_keys()
NAME = "equities_lgbm"
ROOT = Path(__file__).resolve().parents[2]


def _register(mlflow: MlflowResource) -> list[tuple[str, str]]:
    """Two versions of NAME from two runs (an artifact each); (version, run id) each."""
    client = mlflow.client()
    with mlflow.start_run(asset="x", partition=None, dagster_run_id="-", data_fingerprint="-"):
        pass  # creates the experiment the resource's way: artifacts beside the db
    exp = client.get_experiment_by_name("trademl")
    client.create_registered_model(NAME)
    out = []
    for i in range(2):
        run = client.create_run(exp.experiment_id)
        client.log_text(run.info.run_id, f"model {i}", "model/model.txt")
        client.set_terminated(run.info.run_id)
        source = f"{run.info.artifact_uri}/model"
        version = client.create_model_version(NAME, source, run_id=run.info.run_id)
        out.append((str(version.version), run.info.run_id))
    return out


def test_rollback_restores_the_previous_champion_from_the_session_on(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TRADEML_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    subprocess.run([sys.executable, "-m", "trademl_jobs.instance"], env=env, check=True, cwd=ROOT)
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    (v1, run1), (v2, run2) = _register(mlflow)
    lake = Lake(home / "lake")
    for key, version, run, prev in ((KEYS[-10], v1, run1, None), (KEYS[-3], v2, run2, v1)):
        mlflow.promote(NAME, version, {"verdict": "passed"})
        row = {
            "date": dt.date.fromisoformat(key),
            "version": version,
            "previous_champion": prev,
            "run_id": run,
            "model_uri": f"models:/{NAME}/{version}",
        }
        lake.write_partitions(
            f"{NAME}_champion", pl.DataFrame([row], schema=CHAMPION_SCHEMA), [key], "date"
        )
    assert mlflow.alias_version(NAME, PREVIOUS_CHAMPION).version == int(v1)

    cli = [sys.executable, "-m", "trademl_jobs.rollback", NAME, "--reason", "drawdown"]
    done = subprocess.run(cli, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"champion is v{v1} as of {KEYS[-1]}" in done.stdout
    assert str(mlflow.alias_version(NAME, CHAMPION).version) == v1
    assert mlflow.alias_version(NAME, PREVIOUS_CHAMPION) is None
    tags = mlflow.client().get_model_version(NAME, v2).tags
    assert tags["rollback.reason"] == "drawdown"
    history = champion_history(lake, f"{NAME}_champion")
    latest = champion_as_of(history, dt.date.fromisoformat(KEYS[-1]))
    assert latest["version"] == v1 and latest["previous_champion"] == v2
    assert latest["run_id"] == run1 and latest["model_uri"] == f"models:/{NAME}/{v1}"
    # point in time: the sessions before the rollback keep the champion they had
    assert champion_as_of(history, dt.date.fromisoformat(KEYS[-3]))["version"] == v2
    assert champion_as_of(history, dt.date.fromisoformat(KEYS[-10]))["version"] == v1

    again = subprocess.run(cli, env=env, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 1
    assert "no `previous_champion` alias" in again.stderr
    assert str(mlflow.alias_version(NAME, CHAMPION).version) == v1  # nothing moved
