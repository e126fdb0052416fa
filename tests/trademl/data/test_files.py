"""Tests of the "files" market-data source on real parquet/CSV files in tmp_path."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import polars as pl
import pytest

from trademl.data.files import SCHEMA, DataSourceError, FilesSource

D1, D2, D3 = dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)
HEADER = "date,symbol,open,high,low,close,volume\n"


def bars(dates: list[dt.date], symbols: tuple[str, ...] = ("AAA", "BBB")) -> pl.DataFrame:
    """A small, well-formed long-format frame in the canonical schema."""
    rows = [
        {"date": d, "symbol": s, "open": 10.0 + i, "high": 11.0 + i, "low": 9.0 + i}
        | {"close": 10.5 + i, "volume": 1000.0 * (i + 1)}
        for i, d in enumerate(dates)
        for s in symbols
    ]
    return pl.DataFrame(rows, schema=SCHEMA)


def write_csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    """Write a CSV file with a header and the given data lines."""
    path.write_text(header + "".join(line + "\n" for line in lines))
    return path


def raises(path: Path, *fragments: str) -> str:
    """Load `path`, expect one DataSourceError naming the file and each fragment."""
    with pytest.raises(DataSourceError) as info:
        FilesSource(path).load()
    message = str(info.value)
    for fragment in (path.name, *fragments):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- happy paths ------------------------------------------------------------------------------


def test_folder_with_parquet_and_csv_is_concatenated_and_sorted(tmp_path: Path) -> None:
    bars([D1, D2]).write_parquet(tmp_path / "a.parquet")
    sub = tmp_path / "more"
    sub.mkdir()
    bars([D3]).write_csv(sub / "b.csv")
    (tmp_path / "notes.txt").write_text("not data")

    source = FilesSource(tmp_path)
    assert source.files() == [tmp_path / "a.parquet", sub / "b.csv"]
    out = source.load()
    assert out.schema == SCHEMA
    assert out.height == 6
    assert out["date"].to_list() == [D1, D1, D2, D2, D3, D3]
    assert out["symbol"].to_list() == ["AAA", "BBB"] * 3
    assert out.equals(pl.concat([bars([D1, D2]), bars([D3])]))


def test_symbol_spanning_files_and_gzipped_csv(tmp_path: Path) -> None:
    bars([D3, D2], ("BBB", "AAA")).write_parquet(tmp_path / "x.pq")  # unsorted on purpose
    with gzip.open(tmp_path / "y.csv.gz", "wt") as fh:
        fh.write(bars([D1], ("AAA",)).write_csv())
    out = FilesSource(tmp_path).load()
    assert out["date"].to_list() == [D1, D2, D2, D3, D3]
    assert out["symbol"].to_list() == ["AAA", "AAA", "BBB", "AAA", "BBB"]


def test_csv_with_iso_strings(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "iso.csv",
        ["2024-01-02T00:00:00,AAA,1,2,0.5,1.5,100", "2024-01-03T00:00:00,AAA,1,2,0.5,1.5,100"],
    )
    out = FilesSource(path).load()
    assert out.schema == SCHEMA
    assert out["date"].to_list() == [D1, D2]


def test_csv_with_slash_dates_and_utc_offsets(tmp_path: Path) -> None:
    slash = write_csv(tmp_path / "slash.csv", ["2024/01/02,AAA,1,2,0.5,1.5,100"])
    assert FilesSource(slash).load()["date"].to_list() == [D1]
    aware = write_csv(tmp_path / "aware.csv", ["2024-01-02T21:00:00Z,AAA,1,2,0.5,1.5,100"])
    assert FilesSource(aware).load()["date"].to_list() == [D1]


def test_parquet_with_utc_timestamps_maps_to_new_york_date(tmp_path: Path) -> None:
    frame = bars([D1, D2]).with_columns(
        date=pl.col("date").cast(pl.Datetime("us")).dt.offset_by("21h").dt.replace_time_zone("UTC")
    )
    assert frame["date"][0] == dt.datetime(2024, 1, 2, 21, tzinfo=dt.UTC)
    frame.write_parquet(tmp_path / "utc.parquet")
    source = FilesSource(tmp_path / "utc.parquet")
    out = source.load()
    assert out.schema == SCHEMA
    assert out["date"].to_list() == [D1, D1, D2, D2]  # 21:00Z is 16:00 in New York
    assert source.load(start=D2, end=D2)["date"].to_list() == [D2, D2]
    tokyo = FilesSource(tmp_path / "utc.parquet", exchange_tz="Asia/Tokyo").load()
    assert tokyo["date"].to_list() == [D2, D2, D3, D3]  # 21:00Z is 06:00 next day in Tokyo


def test_start_end_filter_is_inclusive(tmp_path: Path) -> None:
    bars([D1, D2, D3]).write_parquet(tmp_path / "a.parquet")
    bars([D1, D2, D3], ("CCC",)).write_csv(tmp_path / "b.csv")
    source = FilesSource(tmp_path)
    out = source.load(start=D2, end=D3)
    assert sorted(set(out["date"].to_list())) == [D2, D3]
    assert out.height == 6
    assert source.load(start=D3)["date"].to_list() == [D3] * 3
    assert source.load(end=D1)["date"].to_list() == [D1] * 3
    assert source.load(start=dt.date(2030, 1, 1)).schema == SCHEMA


def test_naive_midnight_parquet_datetimes_are_dates(tmp_path: Path) -> None:
    frame = bars([D1, D2, D3]).with_columns(pl.col("date").cast(pl.Datetime("ns")))
    frame.write_parquet(tmp_path / "naive.parquet")
    out = FilesSource(tmp_path).load(start=D2, end=D2)
    assert out["date"].to_list() == [D2, D2]


def test_symbols_filter(tmp_path: Path) -> None:
    bars([D1, D2], ("AAA", "BBB", "CCC")).write_parquet(tmp_path / "a.parquet")
    bars([D3], ("AAA", "BBB", "CCC")).write_csv(tmp_path / "b.csv")
    out = FilesSource(tmp_path, symbols=["CCC", "AAA"]).load()
    assert out["symbol"].to_list() == ["AAA", "CCC"] * 3


def test_bad_rows_pass_through_unchanged(tmp_path: Path) -> None:
    good = bars([D1, D2])
    bad = pl.concat([good, good.head(1)]).with_columns(  # duplicate (D1, AAA)
        close=pl.when(pl.int_range(pl.len()) == 1).then(float("nan")).otherwise(pl.col("close")),
        volume=pl.when(pl.int_range(pl.len()) == 2).then(0.0).otherwise(pl.col("volume")),
    )
    bad.write_parquet(tmp_path / "bad.parquet")
    write_csv(
        tmp_path / "bad.csv",
        ["2024-01-05,ZZZ,1,0.5,2,NaN,0", "2024-01-05,ZZZ,1,0.5,2,NaN,0", "2024-01-05,YYY,1,2,,1,"],
    )
    out = FilesSource(tmp_path).load()
    assert out.height == bad.height + 3
    assert out.filter(date=D1, symbol="AAA").height == 2
    assert out.filter(date=D1, symbol="BBB")["close"].is_nan().all()
    assert out.filter(date=D2, symbol="AAA")["volume"].to_list() == [0.0]
    zzz = out.filter(symbol="ZZZ")
    assert zzz.height == 2 and zzz["close"].is_nan().all() and (zzz["high"] < zzz["low"]).all()
    assert out.filter(symbol="YYY").row(0)[4:] == (None, 1.0, None)


# -- structurally bad input -------------------------------------------------------------------


def test_missing_column_names_file_missing_and_found(tmp_path: Path) -> None:
    bars([D1]).rename({"close": "Close"}).write_parquet(tmp_path / "caps.parquet")
    message = raises(tmp_path / "caps.parquet", "missing column(s) ['close']", "'Close'")
    assert "found columns" in message
    path = write_csv(tmp_path / "few.csv", ["2024-01-02,AAA,1"], header="date,symbol,open\n")
    raises(path, "'high'", "'low'", "'close'", "'volume'", "found columns ['date', 'symbol'")


def test_extra_columns_are_ignored(tmp_path: Path) -> None:
    bars([D1]).with_columns(sector=pl.lit("tech")).write_parquet(tmp_path / "extra.parquet")
    assert FilesSource(tmp_path).load().columns == list(SCHEMA.names())


def test_unparsable_date_names_value_and_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "dates.csv",
        [
            "2024-01-02,AAA,1,2,0.5,1.5,100",
            "2024-01-03,AAA,1,2,0.5,1.5,100",
            "01/04/2024,AAA,1,2,0.5,1.5,100",
            "2024-02-30,AAA,1,2,0.5,1.5,100",
        ],
    )
    raises(path, "column 'date'", "'01/04/2024'", "row 3")
    feb30 = write_csv(tmp_path / "feb30.csv", ["2024-02-30,AAA,1,2,0.5,1.5,100"])
    raises(feb30, "column 'date'", "'2024-02-30'", "row 1")


def test_date_of_wrong_type_in_parquet(tmp_path: Path) -> None:
    bars([D1]).with_columns(date=pl.lit(20240102)).write_parquet(tmp_path / "int.parquet")
    raises(tmp_path / "int.parquet", "column 'date'", "Int32", "expected")


def test_non_numeric_price_names_column_and_value(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "prices.csv",
        ["2024-01-02,AAA,1,2,0.5,1.5,100", "2024-01-03,AAA,1,2,0.5,n/a,100"],
    )
    raises(path, "column 'close'", "'n/a'", "row 2")
    frame = bars([D1]).with_columns(volume=pl.Series(["1,000", "2000"]))
    frame.write_parquet(tmp_path / "vol.parquet")
    raises(tmp_path / "vol.parquet", "column 'volume'", "'1,000'", "row 1")


def test_naive_timestamp_not_at_midnight_is_ambiguous(tmp_path: Path) -> None:
    frame = bars([D1, D2]).with_columns(pl.col("date").cast(pl.Datetime("us")))
    frame = frame.with_columns(date=pl.col("date").dt.offset_by("16h"))
    frame.write_parquet(tmp_path / "naive.parquet")
    raises(tmp_path / "naive.parquet", "ambiguous", "2024-01-02 16:00:00", "row 1")
    path = write_csv(tmp_path / "naive.csv", ["2024-01-02T16:00:00,AAA,1,2,0.5,1.5,100"])
    raises(path, "ambiguous", "'2024-01-02T16:00:00'", "row 1")


def test_mixed_offsets_within_a_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "offsets.csv",
        [
            "2024-01-02T21:00:00+00:00,AAA,1,2,0.5,1.5,100",
            "2024-01-03T16:00:00-05:00,AAA,1,2,0.5,1.5,100",
        ],
    )
    raises(path, "mixes time zones", "+00:00", "-05:00", "row 2")


def test_offset_and_no_offset_within_a_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "some.csv",
        ["2024-01-02,AAA,1,2,0.5,1.5,100", "2024-01-03T21:00:00Z,AAA,1,2,0.5,1.5,100"],
    )
    raises(path, "mixes time zones", "no UTC offset", "UTC offset +00:00")


def test_time_zones_differ_across_files(tmp_path: Path) -> None:
    utc = bars([D1]).with_columns(pl.col("date").cast(pl.Datetime("us")).dt.offset_by("21h"))
    utc.with_columns(pl.col("date").dt.replace_time_zone("UTC")).write_parquet(tmp_path / "a.pq")
    ny = utc.with_columns(pl.col("date").dt.offset_by("-5h").dt.replace_time_zone("EST5EDT"))
    ny.write_parquet(tmp_path / "b.pq")
    with pytest.raises(DataSourceError, match="time zone") as info:
        FilesSource(tmp_path).load()
    assert "a.pq" in str(info.value) and "b.pq" in str(info.value)


def test_aware_mixed_with_naive_across_files(tmp_path: Path) -> None:
    bars([D1]).write_parquet(tmp_path / "a.parquet")
    write_csv(tmp_path / "b.csv", ["2024-01-03T21:00:00Z,AAA,1,2,0.5,1.5,100"])
    with pytest.raises(DataSourceError, match="time zones differ") as info:
        FilesSource(tmp_path).load()
    message = str(info.value)
    assert "a.parquet" in message and "b.csv" in message and "UTC" in message


def test_empty_files(tmp_path: Path) -> None:
    for name in ("zero.csv", "zero.parquet"):
        (tmp_path / name).write_bytes(b"")
        raises(tmp_path / name, "empty", "0 bytes")
    raises(write_csv(tmp_path / "header.csv", []), "empty", "0 rows")
    bars([]).write_parquet(tmp_path / "norows.parquet")
    raises(tmp_path / "norows.parquet", "empty", "0 rows")


def test_file_disappearing_between_listing_and_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars([D1]).write_parquet(tmp_path / "a.parquet")
    bars([D2]).write_parquet(tmp_path / "b.parquet")
    listed = FilesSource.files

    def list_then_lose_one(self: FilesSource) -> list[Path]:
        found = listed(self)
        found[-1].unlink()  # another process moves the file away after the listing
        return found

    monkeypatch.setattr(FilesSource, "files", list_then_lose_one)
    with pytest.raises(DataSourceError, match="disappeared while reading") as info:
        FilesSource(tmp_path).load()
    assert "b.parquet" in str(info.value)


def test_corrupt_parquet(tmp_path: Path) -> None:
    bars([D1]).write_parquet(tmp_path / "good.parquet")
    data = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "torn.parquet").write_bytes(data[: len(data) // 2])
    raises(tmp_path / "torn.parquet", "cannot read parquet file")
    with pytest.raises(DataSourceError, match=r"torn\.parquet"):
        FilesSource(tmp_path).load()


def test_missing_path_and_folder_without_data(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        FilesSource(tmp_path / "nowhere").files()
    (tmp_path / "readme.txt").write_text("no bars here")
    with pytest.raises(DataSourceError, match="no data files found"):
        FilesSource(tmp_path).files()


# -- row context, whole-file hint and unknown symbols -----------------------------------------


def load_error(path: Path, start: dt.date | None = None, end: dt.date | None = None) -> str:
    """`FilesSource(path).load(start, end)`'s DataSourceError message (the load must fail)."""
    with pytest.raises(DataSourceError) as info:
        FilesSource(path).load(start, end)
    return str(info.value)


def assert_has(message: str, *fragments: str) -> None:
    """Every fragment occurs in `message` (the failure shows the whole message)."""
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_non_numeric_value_names_session_and_symbol(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bars.csv",
        [
            "2024-01-02,AAA,1,2,0.5,1.5,100",
            "2024-01-02,BBB,1,2,0.5,1.5,100",
            "2024-01-03,AAA,1,2,0.5,1.5,100",
            "2024-01-03,BBB,1,2,0.5,n/a,100",
        ],
    )
    message = load_error(path)
    assert_has(
        message,
        f"{path}: column 'close' has non-numeric value 'n/a' at row 4 (2024-01-03, BBB); "
        "expected a number",
    )
    frame = bars([D1, D2]).with_columns(volume=pl.Series(["1", "2", "3", "1,000"]))
    frame.write_parquet(tmp_path / "vol.parquet")
    assert_has(
        load_error(tmp_path / "vol.parquet"),
        "column 'volume' has non-numeric value '1,000' at row 4 (2024-01-03, BBB)",
    )


def test_non_numeric_value_session_is_the_exchange_date(tmp_path: Path) -> None:
    # 02:00Z on Jan 3 is 21:00 on Jan 2 in New York: the session is Jan 2
    path = write_csv(tmp_path / "utc.csv", ["2024-01-03T02:00:00Z,AAA,1,2,0.5,oops,100"])
    assert_has(load_error(path), "'oops' at row 1 (2024-01-02, AAA)")


def test_non_numeric_value_with_missing_symbol(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nosym.csv", ["2024-01-02,,1,2,0.5,-,100"])
    assert_has(load_error(path), "'-' at row 1 (2024-01-02, symbol missing)")


def test_unparsable_date_names_symbol(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "dates.csv",
        ["2024-01-02,AAA,1,2,0.5,1.5,100", "01/03/2024,BBB,1,2,0.5,1.5,100"],
    )
    assert_has(load_error(path), "unparsable value '01/03/2024' at row 2 (symbol BBB); expected")
    naive = write_csv(
        tmp_path / "naive.csv",
        ["2024-01-02,AAA,1,2,0.5,1.5,100", "2024-01-03T16:00:00,CCC,1,2,0.5,1.5,100"],
    )
    assert_has(load_error(naive), "'2024-01-03T16:00:00' at row 2 (symbol CCC)", "ambiguous")


def test_bad_dates_in_parquet_name_symbol(tmp_path: Path) -> None:
    typed = bars([D1, D2]).with_columns(
        date=pl.Series([D1, D1, None, D2], dtype=pl.Date), symbol=pl.Series(["A", "B", "C", "D"])
    )
    typed.write_parquet(tmp_path / "typed.parquet")  # typed: checked with pushdown
    assert_has(
        load_error(tmp_path / "typed.parquet"), "null (missing) at row 3 (symbol C)", "expected"
    )
    untyped = typed.with_columns(volume=pl.col("volume").cast(pl.String))
    untyped.write_parquet(tmp_path / "untyped.parquet")  # strings: checked value by value
    assert_has(load_error(tmp_path / "untyped.parquet"), "null (missing) at row 3 (symbol C)")
    stamps = bars([D1]).with_columns(pl.col("date").cast(pl.Datetime("us")).dt.offset_by("9h"))
    stamps.write_parquet(tmp_path / "stamps.parquet")
    assert_has(load_error(tmp_path / "stamps.parquet"), "at row 1 (symbol AAA)", "ambiguous")


def test_mixed_offsets_name_both_symbols(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "mixed.csv",
        [
            "2024-01-02T21:00:00Z,AAA,1,2,0.5,1.5,100",
            "2024-01-03T16:00:00-05:00,BBB,1,2,0.5,1.5,100",
        ],
    )
    message = load_error(path, start=D1, end=D1)
    assert_has(message, "row 1 '2024-01-02T21:00:00Z' (symbol AAA)", "row 2", "(symbol BBB)")
    assert_has(message, "Fix mixed.csv:", "every session", "this load asked for 2024-01-02")
    assert "Fix row" not in message


def test_bad_value_outside_the_requested_range_says_which_row_to_fix(tmp_path: Path) -> None:
    bars([D1, D2, D3], ("AAA",)).write_parquet(tmp_path / "good.parquet")
    path = write_csv(
        tmp_path / "bad.csv",
        [
            "2024-01-02,BBB,1,2,0.5,1.5,100",
            "2024-01-03,BBB,1,2,0.5,1.5,100",
            "2024-01-04,BBB,1,2,0.5,1.5,#N/A",
        ],
    )
    source = FilesSource(tmp_path)
    with pytest.raises(DataSourceError) as info:
        source.load(start=D1, end=D1)  # the bad row is on D3, outside the window
    message = str(info.value)
    assert_has(
        message,
        f"{path}: column 'volume' has non-numeric value '#N/A' at row 3 (2024-01-04, BBB)",
        "Fix row 3 of bad.csv: each file is checked whole, so this fails the load of every "
        "session (this load asked for 2024-01-02), not only that row's session",
    )
    assert "good.parquet" not in message
    assert_has(load_error(tmp_path), "(this load asked for all dates)")
    with pytest.raises(DataSourceError, match=r"asked for 2024-01-02 to 2024-01-03\)"):
        source.load(start=D1, end=D2)
    with pytest.raises(DataSourceError, match="asked for 2024-01-03 onwards"):
        source.load(start=D2)
    with pytest.raises(DataSourceError, match="asked for up to 2024-01-03"):
        source.load(end=D2)
    path.write_text(HEADER + "2024-01-02,BBB,1,2,0.5,1.5,100\n")  # fixed: loads again
    assert source.load(start=D1, end=D1)["symbol"].to_list() == ["AAA", "BBB"]


def test_unknown_symbols_are_named_with_the_files_searched(tmp_path: Path) -> None:
    bars([D1, D2], ("S00",)).write_parquet(tmp_path / "a.parquet")
    bars([D1, D2], ("S01",)).write_csv(tmp_path / "b.csv")
    sub = tmp_path / "sub"
    sub.mkdir()
    bars([D3], ("S00", "S01")).write_csv(sub / "c.csv")
    source = FilesSource(tmp_path, symbols=["S00", "S01", "SXX", "SYY", "SXX"])
    with pytest.raises(DataSourceError) as info:
        source.load()
    assert_has(
        str(info.value),
        f"data.symbols ['SXX', 'SYY'] not found in any of 3 files under {tmp_path} "
        "[a.parquet, b.csv, sub/c.csv] (found 2 symbols: S00, S01); expected every listed symbol",
    )
    with pytest.raises(DataSourceError, match=r"\['SXX', 'SYY'\] not found"):
        source.load(start=D3, end=D3)
    assert FilesSource(tmp_path, symbols=["S01", "S00"]).load().height == 6


def test_unknown_symbol_in_a_single_file_with_a_close_match(tmp_path: Path) -> None:
    path = tmp_path / "one.parquet"
    bars([D1], ("AAPL", "MSFT", "S00", "S01", "S02", "S03")).write_parquet(path)
    with pytest.raises(DataSourceError) as info:
        FilesSource(path, symbols=["APPL"]).load()
    message = str(info.value)
    assert_has(
        message,
        f"data.symbols ['APPL'] not found in {path} (found 6 symbols: e.g. AAPL, MSFT, S00, "
        "S01, S02, …)",
        "did you mean: APPL → AAPL?",
    )


def test_symbol_absent_from_the_window_but_in_a_file_is_not_an_error(tmp_path: Path) -> None:
    bars([D1, D2, D3], ("AAA",)).write_parquet(tmp_path / "a.parquet")
    bars([D3], ("NEW",)).write_parquet(tmp_path / "listed_later.parquet")
    bars([D1], ("OLD",)).write_csv(tmp_path / "delisted.csv")
    source = FilesSource(tmp_path, symbols=["AAA", "NEW", "OLD"])
    assert source.load(start=D2, end=D2)["symbol"].to_list() == ["AAA"]
    assert source.load(start=D3, end=D3)["symbol"].to_list() == ["AAA", "NEW"]
    assert source.load(start=D1, end=D1)["symbol"].to_list() == ["AAA", "OLD"]


def test_unknown_symbol_check_reads_non_string_symbol_columns(tmp_path: Path) -> None:
    frame = bars([D1], ("AAA", "BBB")).with_columns(pl.col("symbol").cast(pl.Categorical))
    frame.write_parquet(tmp_path / "cat.parquet")
    assert FilesSource(tmp_path, symbols=["BBB"]).load()["symbol"].to_list() == ["BBB"]
    with pytest.raises(
        DataSourceError, match=r"\[.CCC.\] not found .*\(found 2 symbols: AAA, BBB\)"
    ):
        FilesSource(tmp_path, symbols=["BBB", "CCC"]).load()
