"""The GPU host's compose deployment (deploy/compose.gpu.yaml), checked without Docker: every
file, port, credential and database it wires together exists and agrees, the instance file
it writes is a valid Dagster instance on the same Postgres storage the prod test starts for
real, and its settings track to the compose file's MLflow server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from trademl.config import load_settings
from trademl_jobs.instance import ensure_dagster_home

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.gpu.yaml"
IMAGE_SERVICES = ("mlflow", "code", "webserver", "daemon")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _in_image(path: str) -> Path:
    """A path inside the image (/app/...) as the repository file the Dockerfile copies."""
    assert path.startswith("/app/"), path
    rel = Path(path.removeprefix("/app/"))
    copied = re.findall(r"^COPY (\S+) \./(\S*)$", (REPO / "Dockerfile").read_text(), re.M)
    assert any(rel.parts[0] == src for src, _ in copied), f"the Dockerfile does not copy {rel}"
    assert (REPO / rel).is_file(), rel
    return REPO / rel


def test_services_share_one_image_config_and_storage(compose):
    services = compose["services"]
    assert set(services) == {"postgres", *IMAGE_SERVICES}
    pg = services["postgres"]["environment"]
    for name in IMAGE_SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert svc["image"] == "trademl-gpu" and svc["build"]["dockerfile"] == "Dockerfile"
        assert (COMPOSE.parent / svc["build"]["context"] / "Dockerfile").is_file()
        assert env["TRADEML_ENV"] == "gpu"
        _in_image(env["TRADEML_CONFIG"])
        assert (REPO / "configs" / env["TRADEML_DAGSTER_INSTANCE"]).is_file()
        assert (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_USER"], env["DAGSTER_PG_DB"]) == (
            "postgres",
            pg["POSTGRES_USER"],
            pg["POSTGRES_DB"],
        )
        assert env["DAGSTER_PG_PORT"] == "5432"  # the postgres image's port
        assert env["DAGSTER_PG_PASSWORD"] == pg["POSTGRES_PASSWORD"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    gpu = services["code"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert all("deploy" not in services[n] for n in ("webserver", "daemon", "mlflow"))


def test_webserver_and_daemon_load_the_code_services_grpc_server(compose):
    cmd = re.search(r"-p (\d+)", (REPO / "Dockerfile").read_text().splitlines()[-1])
    assert cmd, "the Dockerfile's CMD serves the code location on a port"
    for name in ("webserver", "daemon"):
        command = " ".join(compose["services"][name]["command"])
        assert "python -m trademl_jobs.instance &&" in command  # the instance file first
        workspace = yaml.safe_load(_in_image(re.search(r"-w (\S+)", command)[1]).read_text())
        (grpc,) = [e["grpc_server"] for e in workspace["load_from"]]
        assert (grpc["host"], grpc["port"]) == ("code", int(cmd[1]))
        assert compose["services"][name]["depends_on"]["code"]


def test_mlflow_server_uses_the_init_scripts_database_and_the_data_volume(compose):
    svc = compose["services"]["mlflow"]
    command = " ".join(svc["command"])
    uri = re.search(r"--backend-store-uri (\S+)", command)[1]
    assert uri.startswith("postgresql+psycopg2://trademl:") and uri.endswith(
        "@postgres:5432/mlflow"
    )
    init = (REPO / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow;" in init
    mounts = compose["services"]["postgres"]["volumes"]
    assert "./postgres-init.sql:/docker-entrypoint-initdb.d/10-mlflow.sql:ro" in mounts
    dest = re.search(r"--artifacts-destination (\S+)", command)[1]
    assert dest.startswith("/data/") and "data:/data" in svc["volumes"]
    settings = load_settings(REPO / "configs" / "gpu-compose.yaml")
    port = re.search(r"--port (\d+)", command)[1]
    assert settings.mlflow.tracking_uri == f"http://mlflow:{port}"
    assert f"{port}:{port}" in svc["ports"]


def test_the_instance_it_writes_is_dagsters_postgres_storage(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for key, value in {
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_USER": "trademl",
        "DAGSTER_PG_PASSWORD": "secret",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "TRADEML_DAGSTER_INSTANCE": "dagster.gpu-postgres.yaml",
    }.items():
        monkeypatch.setenv(key, value)
    home = ensure_dagster_home(load_settings(REPO / "configs" / "gpu-compose.yaml"))
    config, _ = dagster_instance_config(str(home))
    assert config["storage"]["postgres"]["postgres_db"]["db_name"] == {"env": "DAGSTER_PG_DB"}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    written = yaml.safe_load((home / "dagster.yaml").read_text())
    prod = yaml.safe_load((REPO / "configs" / "dagster.prod.yaml").read_text())
    # prod's storage (the port from the environment: the compose file says 5432), which the
    # Postgres test starts for real, as it does this very file
    prod["storage"]["postgres"]["postgres_db"]["port"] = {"env": "DAGSTER_PG_PORT"}
    assert written["storage"] == prod["storage"]
    assert "secret" not in (home / "dagster.yaml").read_text()  # credentials stay in the env
    monkeypatch.setenv("TRADEML_DAGSTER_INSTANCE", "dagster.gpu-postgre.yaml")
    with pytest.raises(FileNotFoundError, match=re.escape("dagster.gpu-postgres.yaml")):
        ensure_dagster_home(load_settings(REPO / "configs" / "gpu-compose.yaml"))
