"""A copied or moved TRADEML_HOME keeps working with its own MLflow artifacts: the registered
model downloads from the copy after the original is gone, and new runs write into the copy,
never into the home it came from."""

import shutil
from pathlib import Path

from resources.mlflow import MlflowResource
from resources.mlflow_home import rehome


def _home_with_a_model(home: Path) -> tuple[str, str]:
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    with mlflow.start_run(
        asset="m", partition=None, dagster_run_id="r", data_fingerprint="f"
    ) as run:
        run_id = run.run_id
    client = mlflow.client()
    client.log_text(run_id, "the weights", "model/model.txt")
    client.create_registered_model("m")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version("m", source, run_id=run_id).version
    return run_id, str(version)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_moved_home_reads_and_writes_its_own_artifacts(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    run_id, version = _home_with_a_model(old)
    shutil.copytree(old, new)
    shutil.move(old, tmp_path / "elsewhere")  # the original is no longer where it was
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{new / 'mlflow.db'}")
    got = mlflow.download(f"models:/m/{version}", tmp_path / "dl")
    assert (got / "model.txt").read_text() == "the weights"
    client = mlflow.client()
    assert client.get_run(run_id).info.artifact_uri.startswith((new / "mlartifacts").as_uri())
    with mlflow.start_run(
        asset="m", partition=None, dagster_run_id="r2", data_fingerprint="f"
    ) as run:
        client.log_text(run.run_id, "later", "notes.txt")
    assert (new / "mlartifacts").as_uri() in client.get_run(run.run_id).info.artifact_uri
    assert "notes.txt" in {Path(f).name for f in _files(new / "mlartifacts")}
    assert rehome(new / "mlflow.db") == 0  # once per process; in place it changes nothing


def test_a_copied_home_never_writes_into_the_original(tmp_path):
    old, new = tmp_path / "old", tmp_path / "copy"
    old.mkdir()
    _home_with_a_model(old)
    before = _files(old / "mlartifacts")
    shutil.copytree(old, new)
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{new / 'mlflow.db'}")
    with mlflow.start_run(
        asset="m", partition=None, dagster_run_id="r3", data_fingerprint="f"
    ) as run:
        mlflow.client().log_text(run.run_id, "copy only", "notes.txt")
    assert _files(old / "mlartifacts") == before
    # and the original, used again, still reads its own
    back = MlflowResource(tracking_uri=f"sqlite:///{old / 'mlflow.db'}")
    assert (back.download("models:/m/1", tmp_path / "dl") / "model.txt").exists()
