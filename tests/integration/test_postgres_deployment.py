"""The prod deployment's storage parts, started for real: a PostgreSQL server (Debian's
package; installed here when absent and this runs as root), a session partition run through
the Dagster CLI on an instance whose storage is `configs/dagster.prod.yaml`'s Postgres block
(credentials from the environment, as in prod), and an MLflow tracking server backed by the
same PostgreSQL that the project's MLflow resource logs, registers and promotes through."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.test_cli import REPO
from tests.integration.ui import debian_install, free_port, wait_for
from tests.s3server import moto_s3

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        debian_install("postgresql")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed and cannot be (apt-get needs root)")
    # outside pytest's 0700 tmp tree: the `postgres` user must reach its data folder
    root = Path(tempfile.mkdtemp(prefix="trademl-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "trademl"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        _as_postgres(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                *("-h", "127.0.0.1", "-k", str(sock)),
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(60):
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail("PostgreSQL did not start in 30 s")
        for db in ("dagster", "dagster_gpu", "mlflow"):
            subprocess.run(
                [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "trademl", db],
                check=True,
            )
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("deployment", ["prod", "gpu"])
def test_a_partition_runs_on_dagster_postgres_storage(postgres, tmp_path, deployment):
    """prod: configs/dagster.prod.yaml's storage, in process. gpu: the compose file's way —
    `trademl_jobs.instance` writes configs/dagster.gpu-postgres.yaml for TRADEML_ENV=gpu
    (the multiprocess executor, a process per step) and the run goes to Postgres."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    cfg = tmp_path / "small.yaml"
    env = {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(home / "dagster"),
        "TRADEML_ENV": "local" if deployment == "prod" else "gpu",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_USER": "trademl",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": "dagster" if deployment == "prod" else "dagster_gpu",
        "DAGSTER_PG_PORT": str(postgres),
    }
    if deployment == "prod":
        prod = yaml.safe_load((REPO / "configs" / "dagster.prod.yaml").read_text())
        storage = prod["storage"]
        storage["postgres"]["postgres_db"]["port"] = postgres  # the test server's port
        (home / "dagster" / "dagster.yaml").write_text(
            yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
        )
        cfg.write_text("extends: local\ndata: {symbols: 10, seed: 3}\n")
    else:
        cfg.write_text("extends: gpu\ndata: {symbols: 10, seed: 3, start: 2024-01-02}\n")
        env["TRADEML_DAGSTER_INSTANCE"] = "dagster.gpu-postgres.yaml"
        subprocess.run(
            [sys.executable, "-m", "trademl_jobs.instance"], env=env, cwd=REPO, check=True
        )
    probe = (
        "from trademl_assets.partitions import SESSIONS; print(SESSIONS.get_last_partition_key())"
    )
    latest = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    run = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "trademl_jobs.definitions",
            "--select",
            "bars",
            "--partition",
            latest,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    check = (
        "import dagster as dg\n"
        "with dg.DagsterInstance.get() as i:\n"
        "    ev = i.get_latest_materialization_event(dg.AssetKey('bars'))\n"
        "    print(type(i.event_log_storage).__name__, type(i.run_storage).__name__,\n"
        "          ev.dagster_event.partition, len(i.get_run_records()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    events, runs, partition, n_runs = out.stdout.split()
    assert (events, runs) == ("PostgresEventLogStorage", "PostgresRunStorage")
    assert partition == latest and int(n_runs) == 1
    # nothing of the run went to sqlite files under DAGSTER_HOME
    assert not list((home / "dagster").rglob("*.db"))


def test_mlflow_server_on_postgres_tracks_registers_and_promotes(postgres, tmp_path):
    """As prod runs it: runs and registry in PostgreSQL, artifacts proxied by the server to
    an object store (moto's S3 here) — the client needs no object-store credentials."""
    import boto3

    with moto_s3("mlflow") as s3:
        _mlflow_on_postgres_and_s3(postgres, tmp_path, s3, boto3.client("s3"))


def _mlflow_on_postgres_and_s3(postgres, tmp_path, s3, bucket) -> None:
    from resources.mlflow import CHAMPION, MlflowResource

    port = free_port()
    server_env = {**os.environ, **s3, "MLFLOW_S3_ENDPOINT_URL": s3["AWS_ENDPOINT_URL"]}
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"postgresql+psycopg2://trademl@127.0.0.1:{postgres}/mlflow",
            "--serve-artifacts",
            "--artifacts-destination",
            "s3://mlflow/artifacts",
            "--workers",
            "1",
        ],
        env=server_env,
        stdout=(tmp_path / "mlflow.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", server, tmp_path / "mlflow.log", "the MLflow server")
        mlflow = MlflowResource(tracking_uri=url, experiment="deploy-test")
        with mlflow.start_run(
            asset="bars", partition="2024-01-02", dagster_run_id="r1", data_fingerprint="abc"
        ) as run:
            run.log_metrics({"ic": 0.05})
            run_id = run.run_id
        client = mlflow.client()
        client.log_text(run_id, "weights", "model/model.txt")
        client.create_registered_model("deploy_model")
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
        version = client.create_model_version("deploy_model", source, run_id=run_id).version
        mlflow.promote("deploy_model", version, {"verdict": "passed"})
        assert str(mlflow.alias_version("deploy_model", CHAMPION).version) == str(version)
        got = client.get_run(run_id)
        assert got.info.status == "FINISHED" and got.data.metrics["ic"] == 0.05
        assert got.data.tags["dagster.run_id"] == "r1"
        # the artifact went through the server to the object store, and reads back
        assert got.info.artifact_uri.startswith("mlflow-artifacts:/"), got.info.artifact_uri
        keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="mlflow")["Contents"]]
        assert any(k.endswith(f"{run_id}/artifacts/model/model.txt") for k in keys), keys
        local = client.download_artifacts(run_id, "model/model.txt", str(tmp_path))
        assert Path(local).read_text() == "weights"
        # the rows live in PostgreSQL, not in a local file
        psql = _pg_bin() / "psql"
        rows = subprocess.run(
            [
                str(psql),
                "-h",
                "127.0.0.1",
                "-p",
                str(postgres),
                "-U",
                "trademl",
                "-d",
                "mlflow",
                "-tAc",
                "select count(*) from registered_models where name = 'deploy_model'",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert rows.stdout.strip() == "1"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
