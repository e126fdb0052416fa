"""The lake on S3 (a real S3 API: moto's server in its own process): Delta commits, the
ledger, time travel, side files, and concurrent writers of one table that all land."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.s3server import moto_s3
from trademl.lake import Lake

_WRITER = """
import datetime as dt, sys, polars as pl
from trademl.lake import Lake
lake, start = Lake(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])
for i in range(5):  # five commits, one session each, racing the other writer
    day = start + dt.timedelta(days=2 * i)
    lake.write_partitions("feat", pl.DataFrame({"date": [day], "x": [float(i)]}),
                          [day.isoformat()], "date")
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with moto_s3("lake") as env:
        yield env


def test_tables_on_s3_commit_replace_and_time_travel(s3):
    lake = Lake("s3://lake/one")
    assert lake.storage_options["conditional_put"] == "etag"  # safe concurrent commits
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    frame = pl.DataFrame({"date": days, "x": [1.0, 2.0]})
    keys = [d.isoformat() for d in days]
    lake.write_partitions("feat", frame, keys, "date")
    lake.write_partitions("feat", frame.head(0), keys[:1], "date")  # session 1 restated empty
    assert lake.partitions("feat") == keys and lake.version("feat") == 1
    assert_frame_equal(lake.scan("feat", keys).collect(), frame.tail(1))
    assert_frame_equal(lake.scan("feat", keys, version=0).collect(), frame)
    lake.write_json("bars_ground_truth.json", {"ic": 0.1})
    from pyarrow import fs

    store, key = fs.FileSystem.from_uri("s3://lake/one/bars_ground_truth.json")
    assert b'"ic": 0.1' in store.open_input_stream(key).read()


def test_concurrent_writers_of_one_table_on_s3_all_land(s3, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    root = "s3://lake/race"
    procs = [
        subprocess.Popen([sys.executable, str(script), root, start], env={**os.environ, **s3})
        for start in ("2024-01-01", "2024-01-02")
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    lake = Lake(root)
    want = [(dt.date(2024, 1, 1) + dt.timedelta(days=d)).isoformat() for d in range(10)]
    assert lake.partitions("feat") == want
    assert lake.version("feat") == 9  # ten commits, none lost to the race
    got = lake.scan("feat", want).collect()
    assert got.get_column("x").to_list() == [float(i // 2) for i in range(10)]
