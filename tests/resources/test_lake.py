"""The lake: layout, range writes, atomicity, determinism, lookback reads."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable
from duckdb_extensions import import_extension
from polars.testing import assert_frame_equal

from resources.lake import LEDGER, MISSING_OK, Lake, LakeError, LakeIOManager, LakeResource


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


def test_a_range_write_is_one_commit_of_a_date_partitioned_delta_table(tmp_path):
    lake = Lake(tmp_path)
    counts = lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    assert counts == dict.fromkeys(DAYS, 2)
    table = DeltaTable(str(tmp_path / "feat"))
    assert table.version() == 0 and table.metadata().partition_columns == ["date"]
    assert sorted(p.name for p in (tmp_path / "feat").iterdir()) == [
        "_delta_log",
        *(f"date={d}" for d in DAYS),
    ]
    assert lake.partitions("feat") == DAYS
    assert_frame_equal(lake.scan("feat", DAYS).collect(), _frame(DAYS))


def test_other_tools_read_every_table_as_it_is(tmp_path):
    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS), DAYS, "date")
    lake.write("universe", _frame(DAYS[:1]))
    for name, rows in (("feat", 6), ("universe", 2), (LEDGER, 3)):
        uri = str(tmp_path / name)
        assert DeltaTable(uri).to_pyarrow_dataset().count_rows() == rows
        assert pl.scan_delta(uri).select(pl.len()).collect().item() == rows
        con = duckdb.connect()
        import_extension("delta", con=con)
        assert con.sql(f"select count(*) from delta_scan('{uri}')").fetchone() == (rows,)


def test_requested_session_without_rows_is_written_and_reads_empty(tmp_path):
    lake = Lake(tmp_path)
    counts = lake.write_partitions("feat", _frame(DAYS[:1]), DAYS, "date")
    assert counts[DAYS[1]] == 0 and lake.partitions("feat") == DAYS
    empty = lake.scan("feat", DAYS[1:2]).collect()
    assert empty.height == 0 and empty.schema == _frame(DAYS).schema


def test_rows_outside_the_run_are_refused_and_nothing_is_written(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(LakeError, match="outside the run's partitions"):
        lake.write_partitions("feat", _frame(DAYS), DAYS[:2], "date")
    assert lake.partitions("feat") == [] and not lake.exists("feat")


def test_partition_column_other_than_date(tmp_path):
    frame = _frame(DAYS).with_columns(t1=pl.col("date") + pl.duration(days=1))
    lake = Lake(tmp_path)
    keys = ["2024-01-03", "2024-01-04", "2024-01-05"]
    lake.write_partitions("labels", frame, keys, "t1")
    got = lake.scan("labels", ["2024-01-05"]).collect()
    assert got.get_column("date").to_list() == [dt.date(2024, 1, 4)] * 2
    assert got.columns == frame.columns
    with pytest.raises(LakeError, match="partitioned by 't1'"):
        lake.write_partitions("labels", frame, DAYS, "date")


def test_a_rerun_replaces_exactly_its_sessions(tmp_path):
    lake = Lake(tmp_path)
    days = [*DAYS, "2024-01-05", "2024-01-08"]
    lake.write_partitions("feat", _frame(days), days, "date")
    changed = _frame(DAYS[1:]).with_columns(pl.col("x") + 100)
    lake.write_partitions(
        "feat", changed.filter(pl.col("date") != pl.date(2024, 1, 4)), DAYS[1:], "date"
    )
    got = lake.scan("feat", days).collect()
    assert_frame_equal(got.filter(pl.col("date") == pl.date(2024, 1, 2)), _frame(DAYS[:1]))
    day2 = got.filter(pl.col("date") == pl.date(2024, 1, 3))
    assert day2.get_column("x").to_list() == [100.0, 101.0]
    assert got.filter(pl.col("date") == pl.date(2024, 1, 4)).height == 0  # replaced by nothing
    assert_frame_equal(got.filter(pl.col("date") >= pl.date(2024, 1, 5)), _frame(days).tail(4))
    assert lake.version("feat") == 1  # one commit per write


def test_rewrites_give_identical_content_and_reads_are_deterministic(tmp_path):
    lake = Lake(tmp_path)
    frame = _frame(DAYS, symbols=("C", "A", "B"))  # not sorted by symbol: written order kept
    lake.write_partitions("feat", frame, DAYS, "date")
    first = lake.scan("feat", DAYS).collect()
    lake.write_partitions("feat", frame, DAYS, "date")
    again = lake.scan("feat", DAYS).collect()
    assert_frame_equal(first, frame)
    assert_frame_equal(again, first)
    assert lake.version("feat") == 1


_WRITER = """
import sys, datetime as dt, polars as pl
from trademl.lake import Lake
n, value = int(sys.argv[2]), float(sys.argv[3])
days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(40)]
frame = pl.DataFrame({"date": pl.Series(days).repeat_by(n).explode(), "x": value}).with_columns(
    symbol=pl.int_range(pl.len()).cast(pl.String)
)
print("writing", flush=True)
Lake(sys.argv[1]).write_partitions("big", frame, [d.isoformat() for d in days], "date")
print("done", flush=True)
"""


def test_a_writer_killed_mid_commit_leaves_the_previous_version(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    root = tmp_path / "lake"
    assert subprocess.run([sys.executable, str(script), str(root), "1000", "1"]).returncode == 0
    lake = Lake(root)
    keys = lake.partitions("big")
    killed = 0
    for delay in (0.3, 0.6, 0.9):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root), "150000", "2"], stdout=subprocess.PIPE
        )
        assert proc.stdout.readline().strip() == b"writing"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
        killed += b"done" not in out
        # every reader sees a whole version: the old table or the new one, never a mix
        got = lake.scan("big", keys).select(pl.len(), pl.col("x").unique().alias("x")).collect()
        if lake.version("big") == 0:
            assert got.rows() == [(40_000, 1.0)]
        else:
            assert got.rows() == [(6_000_000, 2.0)]
            break
    assert killed >= 1, "the writer always finished before the kill: make it bigger"


def test_time_travel_returns_a_training_runs_exact_rows_after_later_writes(tmp_path):
    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS[:2]), DAYS[:2], "date")
    pinned = lake.version("feat")
    seen = lake.scan("feat", DAYS[:2], version=pinned).collect()
    lake.write_partitions("feat", _frame(DAYS).tail(2), DAYS[2:], "date")  # appended session
    lake.write_partitions(  # and a restated one
        "feat", _frame(DAYS[:1]).with_columns(pl.col("x") - 1), DAYS[:1], "date"
    )
    assert lake.version("feat") == pinned + 2
    assert_frame_equal(lake.scan("feat", DAYS[:2], version=pinned).collect(), seen)
    assert lake.partitions("feat", pinned) == DAYS[:2]
    with pytest.raises(LakeError, match="not written"):
        lake.scan("feat", DAYS, version=pinned)
    assert lake.scan("feat", DAYS[:1]).collect().get_column("x").to_list() == [-1.0, 0.0]


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


def test_reads_share_a_handle_per_version_and_keep_the_version_they_were_built_at(tmp_path):
    """Every Lake of a process shares one handle per table version; a LazyFrame built before
    a later commit still reads its own version; the ledger follows new commits; a table
    deleted and re-created under the same path never answers from the old one."""
    import shutil

    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS[:2]), DAYS[:2], "date")
    before = lake.scan("feat", DAYS[:2])
    assert Lake(tmp_path).table("feat") is lake.table("feat")
    assert lake.version("feat") == 0 and lake.exists("feat") and not lake.exists("nope")
    changed = _frame(DAYS[:2]).with_columns(pl.col("x") + 1.0)
    lake.write_partitions("feat", changed, DAYS[:2], "date")
    assert lake.version("feat") == 1 and lake.table("feat").version() == 1
    assert_frame_equal(before.collect(), _frame(DAYS[:2]))  # read as it was built
    assert_frame_equal(lake.scan("feat", DAYS[:2]).collect(), changed)
    assert lake.partitions("feat") == DAYS[:2]
    lake.write_partitions("feat", _frame(DAYS[2:]), DAYS[2:], "date")
    assert lake.partitions("feat") == DAYS and lake.partitions("feat", 1) == DAYS[:2]
    from trademl import lake_handles

    def held() -> list[int]:
        return sorted(k[1] for k in lake_handles._handles if k[0] == lake.uri("feat"))

    assert held() == [1, 2]  # the newest and the one a pinned read asked for
    lake.write_partitions("feat", _frame(DAYS[2:]), DAYS[2:], "date")
    lake.table("feat")
    assert held() == [3]  # a newer version retires the older handles of the table

    shutil.rmtree(tmp_path / "feat")
    assert not lake.exists("feat") and lake.partitions("feat") == []
    with pytest.raises(LakeError, match="materialize feat first"):
        lake.scan("feat", DAYS[:1])
    other = _frame(DAYS[:1], symbols=("Z",))
    lake.write_partitions("feat", other, DAYS[:1], "date")
    assert lake.version("feat") == 0 and lake.partitions("feat") == DAYS[:1]
    assert_frame_equal(lake.scan("feat", DAYS[:1]).collect(), other)

    shutil.rmtree(tmp_path)  # the whole lake, ledger included, re-created
    lake.write_partitions("feat", _frame(DAYS[1:2]), DAYS[1:2], "date")
    assert lake.partitions("feat") == DAYS[1:2]
    assert_frame_equal(lake.scan("feat", DAYS[1:2]).collect(), _frame(DAYS[1:2]))


def test_the_ledger_is_compacted_as_it_grows_and_answers_the_same(tmp_path, monkeypatch):
    """Every COMPACT_EVERY ledger commits its one-file-per-write folders are merged: a table's
    sessions (and what a pinned version saw) read the same from a few files."""
    import trademl.lake_handles as handles

    monkeypatch.setattr(handles, "COMPACT_EVERY", 8)
    lake = Lake(tmp_path)
    days = [
        d.isoformat() for d in pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 1, 20), eager=True)
    ]
    for i, day in enumerate(days):
        lake.write_partitions("feat", _frame([day]), [day], "date")
        if i == 5:
            pinned = lake.version("feat")
    ledger = DeltaTable(str(tmp_path / LEDGER))
    optimized = [h for h in ledger.history() if h.get("operation") == "OPTIMIZE"]
    assert len(optimized) == 2 and ledger.version() == len(days) - 1 + 2  # at versions 8, 16
    assert len(ledger.file_uris()) <= 5  # one merged file and the appends since
    assert lake.partitions("feat") == days and lake.partitions("feat", pinned) == days[:6]
    assert pl.scan_delta(str(tmp_path / LEDGER)).select(pl.len()).collect().item() == len(days)


def test_a_commit_is_found_by_its_token_among_the_newest_commits(tmp_path):
    """The ledger records the version of each write's own commit, found by the write's token
    in the commit files' first lines even after other commits followed it."""
    from trademl.lake_handles import committed_version

    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS[:1]), DAYS[:1], "date")
    lake.write_partitions("feat", _frame(DAYS[1:2]), DAYS[1:2], "date")
    lake.write_partitions("feat", _frame(DAYS[2:]), DAYS[2:], "date")
    tokens = [h["trademl.write"] for h in DeltaTable(str(tmp_path / "feat")).history()]
    uri = str(tmp_path / "feat")
    assert [committed_version(uri, t) for t in tokens] == [2, 1, 0]  # history: newest first
    assert committed_version(uri, tokens[-1], depth=2) is None  # older than the newest two
    assert committed_version(uri, "no-such-write") is None
    assert committed_version(str(tmp_path / "none"), tokens[0]) is None
    ledger = pl.read_delta(str(tmp_path / LEDGER)).sort("session")
    assert ledger.get_column("version").to_list() == [0, 1, 2]


def test_a_ledger_copy_that_cannot_follow_the_log_reads_it_anew(tmp_path, monkeypatch):
    """When the commits since a process's ledger copy cannot be replayed (say, cleaned up
    after a checkpoint), the copy is read anew and still answers every session."""
    from deltalake.exceptions import DeltaError

    from trademl import lake_handles

    lake = Lake(tmp_path)
    lake.write_partitions("feat", _frame(DAYS[:1]), DAYS[:1], "date")
    assert lake.partitions("feat") == DAYS[:1]
    copy = lake_handles._ledgers[lake.uri(LEDGER)]
    Lake(tmp_path).write_partitions("feat", _frame(DAYS[1:]), DAYS[1:], "date")

    def gone(self: DeltaTable) -> None:
        raise DeltaError("commit files since this version are gone")

    stale = copy.handle
    monkeypatch.setattr(DeltaTable, "update_incremental", gone)
    assert lake.partitions("feat") == DAYS
    assert lake_handles._ledgers[lake.uri(LEDGER)].handle is not stale  # opened anew
