"""The local instance's sqlite storage stores a range run's asset events as one batch, and
Dagster sees exactly what its own storage would have recorded."""

import dagster as dg
import pytest

from trademl_jobs.event_log import DAGSTER_ENV, BatchedSqliteEventLogStorage

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def ranged(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": len(context.partition_keys)})


def _instance(tmp_path, custom: bool) -> dg.DagsterInstance:
    storage = (
        {
            "custom": {
                "module": "trademl_jobs.event_log",
                "class": "BatchedSqliteStorage",
                "config": {"base_dir": str(tmp_path / "storage")},
            }
        }
        if custom
        else {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    )
    tmp_path.mkdir(parents=True)
    (tmp_path / "dagster.yaml").write_text(__import__("yaml").safe_dump({"storage": storage}))
    return dg.DagsterInstance.from_config(str(tmp_path))


def _backfill(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    keys = DAYS.get_partition_keys()
    return dg.materialize(
        [ranged],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_a_range_runs_events_are_one_batch_and_read_back_as_dagsters_own(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    for key, value in DAGSTER_ENV.items():
        monkeypatch.setenv(key, value)
    batches: list[int] = []
    real = BatchedSqliteEventLogStorage.store_event_batch

    def spy(self, events):
        batches.append(len(events))
        return real(self, events)

    monkeypatch.setattr(BatchedSqliteEventLogStorage, "store_event_batch", spy)
    results = {}
    for custom in (True, False):
        with _instance(tmp_path / str(custom), custom) as instance:
            assert _backfill(instance).success
            key = dg.AssetKey("ranged")
            parts = instance.get_materialized_partitions(key)
            mats = instance.fetch_materializations(key, limit=1000).records
            results[custom] = (
                sorted(parts),
                sorted(
                    (r.partition_key, r.asset_materialization.metadata["n"].value) for r in mats
                ),
                instance.get_latest_materialization_event(key).dagster_event.partition,
            )
    assert batches == [len(DAYS.get_partition_keys())]  # one batch, only in the custom storage
    assert results[True] == results[False]
    assert len(results[True][0]) == len(DAYS.get_partition_keys())


def test_engines_are_kept_for_a_few_shards_and_a_wipe_closes_them(tmp_path):
    """Many runs read through one storage keep at most `_KEEP_ENGINES` engines open (a
    long-lived webserver), every run's events read back, and a wipe leaves none behind."""
    from trademl_jobs import event_log

    with _instance(tmp_path / "i", custom=True) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, BatchedSqliteEventLogStorage)
        runs = [
            dg.materialize([ranged], instance=instance, partition_key=k).run_id
            for k in DAYS.get_partition_keys()[: event_log._KEEP_ENGINES + 3]
        ]
        assert len(storage._engines) <= event_log._KEEP_ENGINES
        for run_id in runs:  # reading the evicted runs' shards reopens them
            assert any(e.is_dagster_event for e in instance.all_logs(run_id))
        assert len(storage._engines) <= event_log._KEEP_ENGINES
        storage.wipe()
        assert set(storage._engines) <= {"index"}  # no run shard's file is held open
        assert dg.materialize(
            [ranged], instance=instance, partition_key=DAYS.get_partition_keys()[0]
        ).success
