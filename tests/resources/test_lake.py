"""The lake: layout, range writes, atomicity, determinism, lookback reads."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import polars as pl
import pytest

from resources import lake as lake_mod
from resources.lake import MISSING_OK, Lake, LakeError, LakeIOManager, LakeResource


def _frame(days: list[str], symbols: tuple[str, ...] = ("A", "B")) -> pl.DataFrame:
    rows = [
        (dt.date.fromisoformat(d), s, float(i * 10 + j))
        for i, d in enumerate(days)
        for j, s in enumerate(symbols)
    ]
    return pl.DataFrame(
        rows, schema={"date": pl.Date, "symbol": pl.String, "x": pl.Float64}, orient="row"
    )


DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]


def test_range_write_splits_one_file_per_session(tmp_path):
    lake = Lake(tmp_path)
    counts = lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    assert counts == dict.fromkeys(DAYS, 2)
    for d in DAYS:
        path = tmp_path / "feat" / f"date={d}" / "part-0.parquet"
        part = pl.read_parquet(path)
        assert part.get_column("date").unique().to_list() == [dt.date.fromisoformat(d)]
        assert part.height == 2
    assert lake.partitions("feat") == DAYS
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_requested_session_without_rows_gets_an_empty_partition(tmp_path):
    lake = Lake(tmp_path)
    counts = lake.write_partitions("feat", _frame(DAYS[:1]), DAYS, "date")
    assert counts[DAYS[1]] == 0
    empty = pl.read_parquet(tmp_path / "feat" / f"date={DAYS[1]}" / "part-0.parquet")
    assert empty.height == 0 and empty.schema == _frame(DAYS).schema


def test_rows_outside_the_run_are_refused_and_nothing_is_written(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(LakeError, match="outside the run's partitions"):
        lake.write_partitions("feat", _frame(DAYS), DAYS[:2], "date")
    assert lake.partitions("feat") == []


def test_partition_column_other_than_date(tmp_path):
    frame = _frame(DAYS).with_columns(t1=pl.col("date") + pl.duration(days=1))
    lake = Lake(tmp_path)
    keys = ["2024-01-03", "2024-01-04", "2024-01-05"]
    lake.write_partitions("labels", frame, keys, "t1")
    got = pl.read_parquet(tmp_path / "labels" / "date=2024-01-05" / "part-0.parquet")
    assert got.get_column("date").to_list() == [dt.date(2024, 1, 4)] * 2


def test_rewrite_gives_identical_bytes(tmp_path):
    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    path = tmp_path / "feat" / f"date={DAYS[1]}" / "part-0.parquet"
    first = path.read_bytes()
    lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    assert len(first) > 0 and path.read_bytes() == first


def test_same_frame_serializes_to_same_bytes():
    frame = _frame(DAYS)
    assert lake_mod.serialize(frame) == lake_mod.serialize(frame.clone())


def test_interrupted_write_leaves_old_partition_and_no_temp(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    path = tmp_path / "feat" / f"date={DAYS[0]}" / "part-0.parquet"
    before = path.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(lake_mod.os, "replace", crash)
    changed = _frame(DAYS).with_columns(pl.col("x") + 1)
    with pytest.raises(KeyboardInterrupt):
        lake.write_partitions("feat", changed, DAYS, "date")
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_interrupted_first_write_leaves_no_partition(tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def crash_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(lake_mod.os, "replace", crash_second)
    lake = Lake(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    written = lake.partitions("feat")
    assert written == DAYS[:1]  # complete partitions or none, never a partial file
    assert pl.read_parquet(tmp_path / "feat" / f"date={DAYS[0]}" / "part-0.parquet").height == 2
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_scan_reads_a_window_lazily_and_names_missing_sessions(tmp_path):
    lake = Lake(tmp_path)
    lake.write_partitions("bars", _frame(DAYS), DAYS, "date")
    lf = lake.scan("bars", DAYS[1:])
    assert isinstance(lf, pl.LazyFrame)
    assert lf.collect().get_column("date").n_unique() == 2
    with pytest.raises(LakeError, match=r"1 of 2 needed partitions are not written \(2024-01-05\)"):
        lake.scan("bars", ["2024-01-04", "2024-01-05"])


def test_unpartitioned_write_and_json_side_file(tmp_path):
    lake = Lake(tmp_path)
    lake.write("universe", _frame(DAYS[:1]))
    assert lake.scan("universe", None).collect().height == 2
    path = lake.write_json("bars_ground_truth.json", {"ic": 0.05})
    assert '"ic": 0.05' in path.read_text() and path.parent == lake.root  # beside the tables
    with pytest.raises(LakeError, match="plain file name"):
        lake.write_json("bars/_truth.json", {})


def test_a_lookback_marked_missing_ok_reads_only_the_written_partitions(tmp_path):
    parts = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    look = dg.TimeWindowPartitionMapping(start_offset=-3)

    @dg.asset(partitions_def=parts, io_manager_key="lake")
    def up(context) -> pl.DataFrame:
        return _frame([context.partition_key])

    @dg.asset(
        partitions_def=parts,
        io_manager_key="lake",
        ins={"up": dg.AssetIn(partition_mapping=look, metadata={MISSING_OK: True})},
    )
    def strict_ok(up: pl.DataFrame) -> pl.DataFrame:
        return up.select(pl.col("date").max(), pl.lit("A").alias("symbol"), pl.len().alias("x"))

    @dg.asset(
        partitions_def=parts, io_manager_key="lake", ins={"up": dg.AssetIn(partition_mapping=look)}
    )
    def strict(up: pl.DataFrame) -> pl.DataFrame:
        return up

    io = {"lake": LakeIOManager(store=LakeResource(root=str(tmp_path)))}
    inst = dg.DagsterInstance.ephemeral()
    for day in ("2024-01-03", "2024-01-04"):
        assert dg.materialize([up], partition_key=day, resources=io, instance=inst).success
    ok = dg.materialize(
        [up, strict_ok],
        selection=["strict_ok"],
        partition_key="2024-01-04",
        resources=io,
        instance=inst,
    )
    assert ok.success
    assert (
        Lake(tmp_path).scan("strict_ok", ["2024-01-04"]).collect().item(0, "x") == 4
    )  # 2 days × 2
    bad = dg.materialize(
        [up, strict],
        selection=["strict"],
        partition_key="2024-01-04",
        resources=io,
        instance=inst,
        raise_on_error=False,
    )
    assert not bad.success  # without the flag a missing lookback partition is an error
