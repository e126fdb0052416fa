"""`python -m trademl_jobs.lake`: an older parquet lake converts to Delta in one command, an
interrupted conversion resumes, and the tables list with their versions."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trademl.lake import Lake
from trademl_jobs.lake import main

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]


def _bars(day: str) -> pl.DataFrame:
    d = dt.date.fromisoformat(day)
    return pl.DataFrame({"date": [d, d], "symbol": ["A", "B"], "close": [1.0, 2.0]})


def _parquet_lake(root: Path) -> dict[str, pl.DataFrame]:
    """The layout before Delta: date=K/part-0.parquet per session, side files inside bars."""
    for day in DAYS:
        (root / "bars" / f"date={day}").mkdir(parents=True)
        _bars(day).write_parquet(root / "bars" / f"date={day}" / "part-0.parquet")
        labels = _bars(day).with_columns(
            t1=pl.col("date"), date=pl.col("date") - pl.duration(days=7)
        )
        (root / "labels" / f"date={day}").mkdir(parents=True)
        labels.write_parquet(root / "labels" / f"date={day}" / "part-0.parquet")
        (root / "bars" / "_qc" / f"date={day}").mkdir(parents=True)
        pl.DataFrame({"date": [dt.date.fromisoformat(day)], "status": ["GREEN"]}).write_parquet(
            root / "bars" / "_qc" / f"date={day}" / "part-0.parquet"
        )
    # an empty session: written, no rows
    (root / "orders" / f"date={DAYS[0]}").mkdir(parents=True)
    _bars(DAYS[0]).clear().write_parquet(root / "orders" / f"date={DAYS[0]}" / "part-0.parquet")
    (root / "universe").mkdir()
    pl.DataFrame({"symbol": ["A", "B"]}).write_parquet(root / "universe" / "part-0.parquet")
    (root / "bars" / "_ground_truth.json").write_text('{"ic": 0.1}')
    return {
        "bars": pl.concat([_bars(d) for d in DAYS]),
        "labels": pl.concat(
            [pl.read_parquet(root / "labels" / f"date={d}" / "part-0.parquet") for d in DAYS]
        ),
    }


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_a_parquet_lake_converts_to_delta_in_one_command(tmp_path, capsys):
    root = tmp_path / "lake"
    expected = _parquet_lake(root)
    moved = _cli(capsys, "--root", str(root), "migrate")
    assert {m["table"]: (m["sessions"], m["rows"], m["column"]) for m in moved} == {
        "bars": (3, 6, "date"),
        "bars_qc": (3, 3, "date"),
        "labels": (3, 6, "t1"),
        "orders": (1, 0, "date"),
        "universe": (None, 2, None),
    }
    lake = Lake(root)
    assert_frame_equal(lake.scan("bars", DAYS).collect(), expected["bars"])
    assert_frame_equal(lake.scan("labels", DAYS).collect(), expected["labels"])
    assert (
        lake.partitions("orders") == DAYS[:1]
        and lake.scan("orders", DAYS[:1]).collect().height == 0
    )
    assert lake.scan("universe", None).collect().height == 2
    assert json.loads((root / "bars_ground_truth.json").read_text()) == {"ic": 0.1}
    assert sorted(p.name for p in (root / "bars").iterdir()) == [
        "_delta_log",
        *(f"date={d}" for d in DAYS),
    ]
    assert _cli(capsys, "--root", str(root), "migrate") == []  # a converted lake: nothing to do
    tables = {t["table"]: t for t in _cli(capsys, "--root", str(root), "tables")}
    assert tables["labels"]["partitioned_by"] == ["t1"]
    assert (tables["bars"]["version"], tables["bars"]["sessions"]) == (0, 3)


def test_an_interrupted_conversion_resumes(tmp_path, capsys):
    root = tmp_path / "lake"
    expected = _parquet_lake(root)
    # killed after renaming bars aside and writing part of its Delta table
    (root / "bars").rename(root / ".bars.parquet-old")
    Lake(root).write_partitions("bars", _bars(DAYS[0]), DAYS[:1], "date")
    moved = _cli(capsys, "--root", str(root), "migrate")
    assert {m["table"] for m in moved} == {"bars", "bars_qc", "labels", "orders", "universe"}
    assert not (root / ".bars.parquet-old").exists()
    lake = Lake(root)
    assert lake.partitions("bars") == DAYS
    assert_frame_equal(lake.scan("bars", DAYS).collect(), expected["bars"])


def test_a_folder_that_is_not_a_table_is_refused_by_name(tmp_path, capsys):
    root = tmp_path / "lake"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "readme.txt").write_text("hi")
    with pytest.raises(SystemExit, match=r"notes.*not a lake table"):
        main(["--root", str(root), "migrate"])
    shutil.rmtree(root / ".notes.parquet-old", ignore_errors=True)
