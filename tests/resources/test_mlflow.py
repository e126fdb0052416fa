"""MlflowResource against a real sqlite-backed MLflow store."""

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import mlflow.pyfunc
import polars as pl
import pytest
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import fluent

from resources.mlflow import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, MlflowResource
from trademl.provenance import data_fingerprint

_MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
)
SECRET = "s3cr3t-xyz"
CANARY = "canary-visible-4711"


class Doubler(mlflow.pyfunc.PythonModel):
    """The cheapest possible pyfunc model."""

    def predict(self, context: object, model_input: list[int], params: None = None) -> list[int]:
        return [2 * x for x in model_input]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh store dir; MLflow's process-global URIs/env are restored afterwards."""
    saved = {k: os.environ.pop(k, None) for k in _MLFLOW_ENV}
    root = tmp_path_factory.mktemp("mlflow-store")
    yield root
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # also unsets the env var
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    fluent._active_experiment_id = None
    for key, value in saved.items():
        os.environ.pop(key, None)
        if value is not None:
            os.environ[key] = value


@pytest.fixture(scope="module")
def res(store: Path) -> MlflowResource:
    resource = MlflowResource(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    resource.client().search_experiments()  # first connection runs the migrations, once
    return resource


def _run(res: MlflowResource, run_id: str) -> Run:
    return res.client().get_run(run_id)


def test_run_finishes_with_provenance_tags(
    res: MlflowResource, store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEML_GIT_SHA", "feedface")
    report = tmp_path / "report.txt"
    report.write_text("ic=0.05\n")
    with res.start_run(
        asset="bars/daily", partition="2024-01-02", dagster_run_id="dr-1", data_fingerprint="fp-1"
    ) as run:
        assert mlflow.active_run() is not None
        assert mlflow.active_run().info.run_id == run.run_id
        run.log_params({"lookback": 20, "long": "x" * 7000})
        run.log_metrics({"ic": 0.05, "nan": float("nan"), "inf": float("inf")}, step=2)
        run.set_tags({"stage": "research"})
        run.log_dict({"features": ["mom_20"]}, "config/features.json")
        run.log_artifact(report, "reports")
    assert mlflow.active_run() is None
    got = _run(res, run.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None
    tags = got.data.tags
    assert tags["dagster.run_id"] == "dr-1"
    assert tags["dagster.asset"] == "bars/daily"
    assert tags["dagster.partition"] == "2024-01-02"
    assert tags["git.sha"] == "feedface"
    assert tags["data.fingerprint"] == "fp-1"
    assert tags["stage"] == "research"
    assert got.data.params["lookback"] == "20"
    assert len(got.data.params["long"]) == 6000
    assert got.data.metrics["ic"] == pytest.approx(0.05)
    assert got.data.metrics["nan"] != got.data.metrics["nan"]
    assert [f.path for f in res.client().list_artifacts(run.run_id, "config")] == [
        "config/features.json"
    ]
    assert [f.path for f in res.client().list_artifacts(run.run_id, "reports")] == [
        "reports/report.txt"
    ]
    # Artifacts of a sqlite store land beside the db file.
    assert got.info.artifact_uri.startswith((store / "mlartifacts").as_uri())


def test_failing_body_marks_run_failed_and_propagates(res: MlflowResource) -> None:
    holder: dict[str, str] = {}
    with (
        pytest.raises(ZeroDivisionError),
        res.start_run(
            asset="a", partition=None, dagster_run_id="dr-2", data_fingerprint="fp"
        ) as run,
    ):
        holder["id"] = run.run_id
        _ = 1 / 0
    assert mlflow.active_run() is None
    got = _run(res, holder["id"])
    assert got.info.status == "FAILED"
    assert "dagster.partition" not in got.data.tags


def test_keyboard_interrupt_and_leaked_nested_run_are_cleaned_up(res: MlflowResource) -> None:
    holder: dict[str, str] = {}
    with (
        pytest.raises(KeyboardInterrupt),
        res.start_run(asset="a", partition="p", dagster_run_id="dr-3", data_fingerprint="f") as run,
    ):
        holder["id"] = run.run_id
        nested = mlflow.start_run(nested=True)  # left open on purpose
        holder["nested"] = nested.info.run_id
        raise KeyboardInterrupt
    assert mlflow.active_run() is None
    assert _run(res, holder["id"]).info.status == "FAILED"
    assert _run(res, holder["nested"]).info.status == "FAILED"


def test_refuses_to_nest_inside_a_foreign_fluent_run(res: MlflowResource) -> None:
    mlflow.set_tracking_uri(res.tracking_uri)
    foreign = mlflow.start_run()
    try:
        with (
            pytest.raises(RuntimeError, match="already active"),
            res.start_run(asset="a", partition=None, dagster_run_id="d", data_fingerprint="f"),
        ):
            pass
    finally:
        mlflow.end_run()
    assert mlflow.active_run() is None
    assert _run(res, foreign.info.run_id).info.status == "FINISHED"


def test_log_model_register_promote_refuse(res: MlflowResource) -> None:
    name = "alpha_model"
    assert res.alias_version(name, CHAMPION) is None  # model does not exist yet
    run_ids = []
    for i in range(2):
        with res.start_run(
            asset="model", partition=None, dagster_run_id=f"dr-m{i}", data_fingerprint="f"
        ) as run:
            info = mlflow.pyfunc.log_model(
                name="model", python_model=Doubler(), pip_requirements=[]
            )
            assert info.run_id == run.run_id
        run_ids.append(run.run_id)
    assert mlflow.active_run() is None

    v1 = res.register(run_ids[0], "model", name)
    assert v1 == "1"
    challenger = res.alias_version(name, CHALLENGER)
    assert challenger is not None
    assert str(challenger.version) == "1"
    assert challenger.run_id == run_ids[0]
    assert res.alias_version(name, CHAMPION) is None  # model exists, alias does not
    with pytest.raises(MlflowException):
        res.alias_version(name, "not a valid alias!")
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{CHALLENGER}")
    assert loaded.predict([1, 2]) == [2, 4]

    v2 = res.register(run_ids[1], f"runs:/{run_ids[1]}/model", name)
    assert v2 == "2"
    assert str(res.alias_version(name, CHALLENGER).version) == "2"  # type: ignore[union-attr]

    res.promote(name, v1, {"ic": "0.05 > 0.03"})
    assert str(res.alias_version(name, CHAMPION).version) == "1"  # type: ignore[union-attr]
    assert res.alias_version(name, PREVIOUS_CHAMPION) is None
    res.promote(name, v2, {"ic": "0.07 > 0.05", "turnover": "ok"})
    assert str(res.alias_version(name, CHAMPION).version) == "2"  # type: ignore[union-attr]
    assert str(res.alias_version(name, PREVIOUS_CHAMPION).version) == "1"  # type: ignore[union-attr]
    mv2 = res.client().get_model_version(name, v2)
    assert mv2.tags["promotion.ic"] == "0.07 > 0.05"
    assert mv2.tags["promotion.turnover"] == "ok"
    assert mv2.current_stage in (None, "None")  # aliases only, never stages

    v3 = res.register(run_ids[1], "model", name)
    res.refuse(name, v3, {"ic": "0.01 < 0.07"})
    assert str(res.alias_version(name, CHAMPION).version) == "2"  # type: ignore[union-attr]
    assert str(res.alias_version(name, PREVIOUS_CHAMPION).version) == "1"  # type: ignore[union-attr]
    assert str(res.alias_version(name, CHALLENGER).version) == v3  # type: ignore[union-attr]
    assert res.client().get_model_version(name, v3).tags == {"promotion.refused.ic": "0.01 < 0.07"}

    with pytest.raises(ValueError, match="no model logged"):
        res.register(run_ids[0], "not-a-model", name)


def test_secrets_never_reach_the_store(
    res: MlflowResource, store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    leaky_file = tmp_path / "leaky.txt"
    leaky_file.write_text(f"header\nkey={SECRET}\n")
    with res.start_run(
        asset="secrets", partition=None, dagster_run_id="dr-s", data_fingerprint="f"
    ) as run:
        with pytest.raises(ValueError, match="'api_key'") as err:
            run.log_params({"api_key": "whatever"})
        assert SECRET not in str(err.value)
        with pytest.raises(ValueError, match="'x'") as err:
            run.log_params({"x": SECRET})
        assert SECRET not in str(err.value)
        for bad in ({"broker_token": "t"}, {"note": f"Bearer {SECRET}"}):
            with pytest.raises(ValueError):
                run.set_tags(bad)
        with pytest.raises(ValueError, match=r"broker\.password"):
            run.log_dict({"broker": {"password": "p"}}, "cfg.json")
        with pytest.raises(ValueError):
            run.log_dict({"broker": [SECRET]}, "cfg.json")
        with pytest.raises(ValueError):
            run.log_artifact(leaky_file)
        # A refused batch logs nothing, not even its harmless entries.
        with pytest.raises(ValueError):
            run.log_params({"harmless": 1, "x": SECRET})
        run.log_params({"canary": CANARY})
    got = _run(res, run.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"canary": CANARY}
    with (
        pytest.raises(ValueError),
        res.start_run(
            asset="s", partition=None, dagster_run_id="d", data_fingerprint="f", tags={"t": SECRET}
        ),
    ):
        pass
    assert mlflow.active_run() is None

    blobs = [p.read_bytes() for p in store.rglob("*") if p.is_file()]
    assert any(p.name.startswith("mlflow.db") for p in store.rglob("*"))
    assert any(CANARY.encode() in b for b in blobs)  # the scan does see logged values
    assert not any(SECRET.encode() in b for b in blobs)


def test_dagster_asset_run_is_tracked(res: MlflowResource) -> None:
    partitions = dg.StaticPartitionsDefinition(["AAA", "BBB"])
    frame = pl.DataFrame({"symbol": ["AAA", "BBB"], "close": [1.0, 2.0]})

    @dg.asset(key_prefix=["research"], partitions_def=partitions)
    def scored(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> dg.MaterializeResult:
        with mlflow.start_run_for(context, data_fingerprint=data_fingerprint(frame)) as run:
            run.log_metrics({"rows": frame.height})
        return dg.MaterializeResult(metadata={"mlflow_run_id": run.run_id})

    @dg.asset(partitions_def=partitions)
    def broken(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> None:
        with mlflow.start_run_for(context, data_fingerprint="f"):
            raise RuntimeError("boom")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [scored], resources={"mlflow": res}, instance=instance, partition_key="BBB"
    )
    assert result.success
    mat = result.asset_materializations_for_node("research__scored")[0]
    got = _run(res, mat.metadata["mlflow_run_id"].value)
    assert got.info.status == "FINISHED"
    assert got.data.tags["dagster.run_id"] == result.run_id
    assert got.data.tags["dagster.partition"] == "BBB"
    assert got.data.tags["dagster.asset"] == "research/scored"
    # the run links back to the asset's page in the Dagster UI
    assert got.data.tags["dagster.asset_url"] == (
        "http://127.0.0.1:3000/assets/research/scored?partition=BBB"
    )
    assert got.data.tags["data.fingerprint"] == data_fingerprint(frame)
    assert got.data.metrics["rows"] == 2

    failed = dg.materialize(
        [broken],
        resources={"mlflow": res},
        instance=instance,
        partition_key="AAA",
        raise_on_error=False,
    )
    assert not failed.success
    runs = res.client().search_runs(
        [got.info.experiment_id], filter_string=f"tags.`dagster.run_id` = '{failed.run_id}'"
    )
    assert [(r.info.status, r.data.tags["dagster.partition"]) for r in runs] == [("FAILED", "AAA")]
    assert mlflow.active_run() is None


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_partition_range_is_tagged_as_a_span(res: MlflowResource) -> None:
    partitions = dg.StaticPartitionsDefinition(["AAA", "BBB", "CCC"])

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def ranged(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> dg.MaterializeResult:
        with mlflow.start_run_for(context, data_fingerprint="f") as run:
            pass
        return dg.MaterializeResult(metadata={"mlflow_run_id": run.run_id})

    result = dg.materialize(
        [ranged],
        resources={"mlflow": res},
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": "AAA",
            "dagster/asset_partition_range_end": "BBB",
        },
    )
    assert result.success
    mat = result.asset_materializations_for_node("ranged")[0]
    got = _run(res, mat.metadata["mlflow_run_id"].value)
    assert got.data.tags["dagster.partition"] == "AAA...BBB"
    assert got.info.status == "FINISHED"


def test_a_directory_model_registers_and_downloads(res: MlflowResource, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "nested").mkdir(parents=True)
    (src / "meta.json").write_text('{"v": 1}')
    (src / "nested" / "w.bin").write_bytes(b"\x00\x01")
    with res.start_run(
        asset="files", partition=None, dagster_run_id="dr-files", data_fingerprint="f"
    ) as run:
        uri = run.log_model_files(src, name="forecasters")
    assert uri.startswith("models:/")
    version = res.register(run.run_id, uri, "files_model")
    assert str(res.alias_version("files_model", CHALLENGER).version) == version  # type: ignore[union-attr]
    got = res.download(f"models:/files_model/{version}", tmp_path / "out")
    assert (got / "meta.json").read_text() == '{"v": 1}'
    assert (got / "nested" / "w.bin").read_bytes() == b"\x00\x01"
    assert res.download(uri, tmp_path / "out2").joinpath("meta.json").exists()


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_a_training_run_records_the_lake_versions_it_read_and_reproduces_them(
    res: MlflowResource, tmp_path: Path
) -> None:
    from polars.testing import assert_frame_equal

    from resources.lake import Lake, LakeIOManager, LakeResource

    days = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    lookback = dg.TimeWindowPartitionMapping(start_offset=-2)

    @dg.asset(partitions_def=days, io_manager_key="lake")
    def feats(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = context.partition_key
        return pl.DataFrame({"date": [day, day], "x": [1.0, 2.0]}).with_columns(
            pl.col("date").str.to_date()
        )

    @dg.asset(partitions_def=days, ins={"feats": dg.AssetIn(partition_mapping=lookback)})
    def model(
        context: dg.AssetExecutionContext, mlflow: MlflowResource, feats: pl.DataFrame
    ) -> dg.MaterializeResult:
        with mlflow.start_run_for(context, data_fingerprint=data_fingerprint(feats)) as run:
            run.log_metrics({"rows": feats.height})
        return dg.MaterializeResult(metadata={"mlflow_run_id": run.run_id})

    lake = Lake(tmp_path)
    resources = {"mlflow": res, "lake": LakeIOManager(store=LakeResource(root=str(tmp_path)))}
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert dg.materialize([feats], partition_key=day, resources=resources, instance=instance)
    seen = lake.scan("feats", ["2024-01-01", "2024-01-02", "2024-01-03"]).collect()
    result = dg.materialize(
        [feats, model],
        selection=["model"],
        partition_key="2024-01-03",
        resources=resources,
        instance=instance,
    )
    run_id = result.asset_materializations_for_node("model")[0].metadata["mlflow_run_id"].value
    tags = _run(res, run_id).data.tags
    assert tags["lake.feats"] == "v2:2024-01-01..2024-01-03"
    # later: a session appended and a read session restated
    assert dg.materialize(
        [feats], partition_key="2024-01-04", resources=resources, instance=instance
    )
    restated = seen.filter(pl.col("date") == pl.date(2024, 1, 2)).head(1).with_columns(x=9.0)
    lake.write_partitions("feats", restated, ["2024-01-02"], "date")
    (again,) = lake.training_data(tags).values()
    assert_frame_equal(again.collect(), seen)
    assert lake.scan("feats", ["2024-01-02"]).collect().height == 1  # the table did change


def test_an_unused_sqlite_store_is_known_empty_without_creating_it(tmp_path) -> None:
    """A daily run asks whether any model could be registered before opening the store: a
    sqlite file that does not exist means none (and asking does not create it)."""
    db = tmp_path / "never.db"
    fresh = MlflowResource(tracking_uri=f"sqlite:///{db}")
    assert fresh.store_is_empty() and not db.exists()
    fresh.client().search_registered_models()  # opening the store creates it
    assert db.exists() and not fresh.store_is_empty()
    server = MlflowResource(tracking_uri="http://127.0.0.1:5000")
    assert not server.store_is_empty()  # any other store is asked
