"""The "files" market-data source: the user's own daily bars from parquet or CSV files.

Input is long format with columns ``date, symbol, open, high, low, close, volume`` (adjusted
prices; extra columns are ignored, names are case-sensitive). This module only reads and
type-checks: bad *rows* (duplicates, NaN prices, zero volume, high < low ...) pass through
unchanged so that quality control downstream can flag them, while structurally bad *input*
fails loudly with one `DataSourceError` naming the file and the problem.

Row numbers in messages are 1-based data rows (a CSV header is not counted). A message about
one row also names that row's session and symbol where they can be read, and says that the row
must be fixed in the file: each file is checked whole, so one bad value fails the load of every
session, not only its own.

With an explicit symbol list (``data.symbols``), a listed symbol that appears in no file at all,
on any date, is an error (almost always a typo). A symbol that exists but has no rows in the
requested range is not: a name listed later, or delisted earlier, legitimately has no bars in a
short window, and a single-session load must not fail for it.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
NUMERIC_COLUMNS = ("open", "high", "low", "close", "volume")
SCHEMA = pl.Schema(
    {"date": pl.Date, "symbol": pl.String} | dict.fromkeys(NUMERIC_COLUMNS, pl.Float64)
)
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
DATE_FORMS = "YYYY-MM-DD, YYYY/MM/DD, YYYY-MM-DDTHH:MM:SS[±HH:MM|Z], a Date or a Datetime"

NO_ZONE = "no time zone"  # zone label of dates, naive timestamps and offset-free strings
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00"})
_YMD = r"\d{4}-\d{2}-\d{2}"
_HMS = r"[T ]\d{2}:\d{2}:\d{2}"
_OFFSET = r"(?:Z|[+-]\d{2}:\d{2})"
_PUSHDOWN_MARGIN = dt.timedelta(days=2)  # covers any UTC offset between file and exchange


class DataSourceError(ValueError):
    """Structurally bad market-data input; the message names the file and the problem."""


class _RowError(DataSourceError):
    """A bad value at `row` (1-based, None if no single row); `_read_file` adds the fix hint."""

    def __init__(self, message: str, *, row: int | None) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True)
class _Part:
    """Canonical rows read from one file, the time zone its dates were written in, and every
    symbol in the whole file (any date; only collected when a symbol list is given)."""

    frame: pl.DataFrame
    zone: str
    symbols: frozenset[str] = frozenset()


class FilesSource:
    """Daily bars from a folder (searched recursively) or a single parquet/CSV file.

    `symbols`, if given, keeps only those names; `load` raises if one of them appears in no
    file at all (on any date, whatever the requested range), naming it and the files searched.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        symbols: list[str] | None = None,
        exchange_tz: str = "America/New_York",
    ) -> None:
        try:
            ZoneInfo(exchange_tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DataSourceError(f"unknown exchange time zone {exchange_tz!r}") from exc
        self.path = Path(path)
        self.symbols = list(symbols) if symbols is not None else None
        self.exchange_tz = exchange_tz

    def files(self) -> list[Path]:
        """Sorted data files under `path`; hidden files and folders are skipped."""
        root = self.path
        if not root.exists():
            raise DataSourceError(f"{root}: data path does not exist")
        if root.is_file():
            if not _is_data_file(root):
                raise DataSourceError(f"{root}: unsupported file type; expected {_SUFFIXES}")
            return [root]
        found = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and _is_data_file(p)
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not found:
            raise DataSourceError(f"{root}: no data files found; expected {_SUFFIXES}")
        return found

    def load(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """All rows with start <= date <= end (None = open), canonical schema, sorted.

        With a symbol list, a listed symbol absent from every file *entirely* (checked on the
        symbol column over all dates, not only start..end) raises `DataSourceError`; one that
        exists but has no rows in start..end just contributes no rows.
        """
        parts: list[pl.DataFrame] = []
        zones: dict[str, Path] = {}
        found: set[str] = set()
        files = self.files()
        for path in files:
            part = self._read_file(path, start, end)
            zones.setdefault(part.zone, path)
            if len(zones) > 1:
                (z1, p1), (z2, p2) = list(zones.items())[:2]
                raise DataSourceError(
                    f"time zones differ across files: {p1} has {z1}, {p2} has {z2}; "
                    "expected every file in the same time zone (or none with a time zone)"
                )
            parts.append(part.frame)
            found |= part.symbols
        if self.symbols is not None:
            self._check_symbols(files, found)
        return pl.concat(parts, how="vertical").sort(["date", "symbol"], maintain_order=True)

    def _check_symbols(self, files: list[Path], found: set[str]) -> None:
        """Listed symbols that no file contains (on any date) → one error naming them all."""
        missing = [s for s in dict.fromkeys(self.symbols or []) if s not in found]
        if not missing:
            return
        if self.path.is_file():
            searched = str(self.path)
        else:
            names = [str(p.relative_to(self.path)) for p in files]
            shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            noun = "file" if len(names) == 1 else "files"
            searched = f"any of {len(names)} {noun} under {self.path} [{shown}]"
        ordered = sorted(found)
        if ordered:
            some = ", ".join(ordered[:5])
            some = f"e.g. {some}, …" if len(ordered) > 5 else some
            have = f"found {len(ordered)} symbol{'s' if len(ordered) != 1 else ''}: {some}"
        else:
            have = "found no symbols"
        close = {s: difflib.get_close_matches(s, ordered, n=1) for s in missing}
        hints = ", ".join(f"{s} → {m[0]}" for s, m in close.items() if m)
        raise DataSourceError(
            f"data.symbols {missing} not found in {searched} ({have}); expected every listed "
            "symbol in at least one file (checked over all dates, not only the requested range)"
            + (f"; did you mean: {hints}?" if hints else "")
        )

    # -- one file ---------------------------------------------------------------------------

    def _read_file(self, path: Path, start: dt.date | None, end: dt.date | None) -> _Part:
        """Read one file; OS and polars failures become a `DataSourceError` naming it."""
        kind = "parquet" if path.name.lower().endswith(PARQUET_SUFFIXES) else "CSV"
        try:
            if path.stat().st_size == 0:
                raise DataSourceError(f"{path}: file is empty (0 bytes)")
            if kind == "parquet":
                return self._read_parquet(path, start, end)
            return self._read_csv(path, start, end)
        except _RowError as exc:
            what, whose = f"row {exc.row} of {path.name}", "that row's session"
            if exc.row is None:
                what, whose = path.name, "the sessions of the rows named"
            raise DataSourceError(
                f"{exc}. Fix {what}: each file is checked whole, so this fails the load of every "
                f"session ({_window(start, end)}), not only {whose}"
            ) from exc.__cause__
        except DataSourceError:
            raise
        except (OSError, pl.exceptions.PolarsError) as exc:
            if not path.exists():
                raise DataSourceError(
                    f"{path}: file disappeared while reading (it was listed, then gone)"
                ) from exc
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataSourceError(
                f"{path}: cannot read {kind} file ({detail}); expected a valid {kind} file"
            ) from exc

    def _read_csv(self, path: Path, start: dt.date | None, end: dt.date | None) -> _Part:
        """CSV is read as strings so that each bad value can be reported."""
        try:
            raw = pl.read_csv(path, infer_schema=False)
        except pl.exceptions.NoDataError as exc:
            raise DataSourceError(f"{path}: file is empty (no header, no rows)") from exc
        _check_columns(path, raw.columns)
        if raw.height == 0:
            raise DataSourceError(f"{path}: file is empty (header only, 0 rows)")
        return self._convert(path, raw.select(COLUMNS), start, end)

    def _read_parquet(self, path: Path, start: dt.date | None, end: dt.date | None) -> _Part:
        """Typed parquet is scanned lazily with date and symbol filters pushed down."""
        scan = pl.scan_parquet(path)
        schema = scan.collect_schema()
        _check_columns(path, schema.names())
        if scan.select(pl.len()).collect().item() == 0:
            raise DataSourceError(f"{path}: file is empty (0 rows)")
        lf = scan.select(COLUMNS)
        dtype = schema["date"]
        typed = isinstance(dtype, pl.Date | pl.Datetime) and all(
            schema[c].is_numeric() for c in NUMERIC_COLUMNS
        )
        if not typed:  # strings somewhere: read it all and check value by value
            return self._convert(path, lf.collect(), start, end)

        zone = NO_ZONE
        bad = pl.col("date").is_null()
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                bad = bad | (pl.col("date").dt.time() != dt.time(0))
            else:
                zone = _zone_label(dtype.time_zone)
        first_bad = (
            lf.select("date", pl.col("symbol").cast(pl.String))
            .with_row_index("row")
            .filter(bad)
            .head(1)
            .collect()
        )
        if first_bad.height:
            value = first_bad["date"][0]
            _raise_bad_date(
                path,
                value,
                first_bad["row"][0],
                first_bad["symbol"][0],
                ambiguous=value is not None,
            )

        if isinstance(dtype, pl.Datetime) and (start is not None or end is not None):
            lo = dt.datetime.combine(start, dt.time()) - _PUSHDOWN_MARGIN if start else None
            hi = dt.datetime.combine(end, dt.time()) + _PUSHDOWN_MARGIN if end else None
            lf = lf.filter(_between(pl.col("date"), lo, hi, dtype))
        if self.symbols is not None and schema["symbol"] == pl.String:
            lf = lf.filter(pl.col("symbol").is_in(self.symbols))
        lf = lf.with_columns(
            date=_to_exchange_date(pl.col("date"), dtype, self.exchange_tz),
            symbol=pl.col("symbol").cast(pl.String),
            **{c: pl.col(c).cast(pl.Float64) for c in NUMERIC_COLUMNS},
        )
        names: frozenset[str] = frozenset()
        if self.symbols is not None:  # one column, whole file: cheap next to the bars
            listed = scan.select(pl.col("symbol").cast(pl.String).drop_nulls().unique()).collect()
            names = frozenset(listed.to_series().to_list())
        return _Part(self._filter(lf, start, end), zone, names)

    # -- shared conversion ------------------------------------------------------------------

    def _convert(
        self, path: Path, raw: pl.DataFrame, start: dt.date | None, end: dt.date | None
    ) -> _Part:
        """Whole-file frame (any dtypes) → canonical frame; every row is checked."""
        symbols = raw["symbol"].cast(pl.String)
        dates, zone = self._dates(path, raw["date"], symbols)
        frame = pl.DataFrame(
            [dates, symbols] + [_to_float(path, raw[c], dates, symbols) for c in NUMERIC_COLUMNS]
        )
        names: frozenset[str] = frozenset()
        if self.symbols is not None:
            names = frozenset(symbols.drop_nulls().unique().to_list())
        return _Part(self._filter(frame.lazy(), start, end), zone, names)

    def _filter(self, lf: pl.LazyFrame, start: dt.date | None, end: dt.date | None) -> pl.DataFrame:
        """Exact date range (inclusive) and symbol filter on canonical columns."""
        lf = lf.filter(_between(pl.col("date"), start, end, pl.Date))
        if self.symbols is not None:
            lf = lf.filter(pl.col("symbol").is_in(self.symbols))
        return lf.select(COLUMNS).collect()

    def _dates(self, path: Path, s: pl.Series, symbols: pl.Series) -> tuple[pl.Series, str]:
        """Any accepted date column → (pl.Date series, zone label); `symbols` for messages."""
        dtype = s.dtype
        if dtype == pl.String:
            return self._parse_date_strings(path, s, symbols)
        if not isinstance(dtype, pl.Date | pl.Datetime):
            raise DataSourceError(f"{path}: column 'date' has type {dtype}; expected {DATE_FORMS}")
        bad = s.is_null()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            bad = bad | (s.dt.time() != dt.time(0))
        if bad.any():
            row = int(bad.arg_true()[0])
            _raise_bad_date(path, s[row], row, symbols[row], ambiguous=s[row] is not None)
        zone = NO_ZONE
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            zone = _zone_label(dtype.time_zone)
        dates = s.to_frame("date").select(
            _to_exchange_date(pl.col("date"), dtype, self.exchange_tz)
        )
        return dates.to_series(), zone

    def _parse_date_strings(
        self, path: Path, s: pl.Series, symbols: pl.Series
    ) -> tuple[pl.Series, str]:
        """Strings in the accepted forms → dates; bad values and mixed offsets raise."""
        try:  # fast path for the common plain YYYY-MM-DD column
            plain = s.str.to_date("%Y-%m-%d", strict=True)
            if plain.null_count() == 0:
                return plain.alias("date"), NO_ZONE
        except pl.exceptions.PolarsError:
            pass
        text = pl.col("raw").str.strip_chars()
        stamp = text.str.replace(" ", "T").str.replace("Z$", "+00:00")
        naive_ts = stamp.str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, time_unit="us")
        aware_ts = stamp.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%z", strict=False, time_unit="us", time_zone="UTC"
        )
        is_naive = text.str.contains(f"^{_YMD}{_HMS}$")
        df = pl.DataFrame({"raw": s}).with_columns(
            offset=text.str.extract(f"^{_YMD}{_HMS}({_OFFSET})$").str.replace("^Z$", "+00:00"),
            off_midnight=is_naive & (naive_ts.dt.time() != dt.time(0)),
            date=pl.when(text.str.contains(f"^{_YMD}$"))
            .then(text.str.to_date("%Y-%m-%d", strict=False))
            .when(text.str.contains(r"^\d{4}/\d{2}/\d{2}$"))
            .then(text.str.to_date("%Y/%m/%d", strict=False))
            .when(is_naive)
            .then(naive_ts.dt.date())
            .when(text.str.contains(f"^{_YMD}{_HMS}{_OFFSET}$"))
            .then(aware_ts.dt.convert_time_zone(self.exchange_tz).dt.date()),
        )
        bad = df["date"].is_null() | df["off_midnight"].fill_null(False)
        if bad.any():
            row = int(bad.arg_true()[0])
            _raise_bad_date(
                path, s[row], row, symbols[row], ambiguous=bool(df["off_midnight"][row])
            )

        offsets = df["offset"]
        firsts = df.with_row_index("row").group_by("offset", maintain_order=True).first()
        if firsts.height > 1:
            (r1, v1, o1), (r2, v2, o2) = firsts.select("row", "raw", "offset").rows()[:2]
            raise _RowError(
                f"{path}: column 'date' mixes time zones: row {r1 + 1} {v1!r} "
                f"({_symbol_text(symbols[r1])}) has {_offset_text(o1)} but row {r2 + 1} {v2!r} "
                f"({_symbol_text(symbols[r2])}) has {_offset_text(o2)}; "
                "expected one UTC offset (or none) throughout the file",
                row=None,
            )
        zone = NO_ZONE if offsets[0] is None else _zone_label(offsets[0])
        return df["date"], zone


# -- helpers ----------------------------------------------------------------------------------

_SUFFIXES = ", ".join(f"*{s}" for s in PARQUET_SUFFIXES + CSV_SUFFIXES)


def _is_data_file(path: Path) -> bool:
    """True for parquet/CSV names (case-insensitive suffix)."""
    return path.name.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES)


def _check_columns(path: Path, names: list[str]) -> None:
    """Every canonical column must be present (case-sensitive); extras are ignored."""
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DataSourceError(
            f"{path}: missing column(s) {missing}; found columns {list(names)}; "
            f"expected {list(COLUMNS)} (case-sensitive)"
        )


def _raise_bad_date(
    path: Path, value: object, row: int, symbol: str | None, *, ambiguous: bool
) -> None:
    """One message for an unparsable/missing date or an ambiguous naive timestamp at 0-based
    `row` of the file, whose symbol is `symbol`."""
    shown = "null (missing)" if value is None else repr(str(value))
    where = f"row {row + 1} ({_symbol_text(symbol)})"
    if ambiguous:
        raise _RowError(
            f"{path}: column 'date' has naive timestamp {shown} at {where} that is not "
            "at midnight, which is ambiguous without a time zone; expected a date, a midnight "
            "timestamp or a timestamp with a time zone",
            row=row + 1,
        )
    raise _RowError(
        f"{path}: column 'date' has unparsable value {shown} at {where}; expected {DATE_FORMS}",
        row=row + 1,
    )


def _symbol_text(symbol: str | None) -> str:
    """'symbol AAA' or 'symbol missing', for row messages whose date is the problem."""
    return "symbol missing" if symbol is None else f"symbol {symbol}"


def _window(start: dt.date | None, end: dt.date | None) -> str:
    """The requested date range in words, for the whole-file hint."""
    if start is not None and start == end:
        return f"this load asked for {start}"
    if start is not None and end is not None:
        return f"this load asked for {start} to {end}"
    if start is not None:
        return f"this load asked for {start} onwards"
    if end is not None:
        return f"this load asked for up to {end}"
    return "this load asked for all dates"


def _to_float(path: Path, s: pl.Series, dates: pl.Series, symbols: pl.Series) -> pl.Series:
    """Numeric or numeric-string column → Float64; NaN/inf/empty pass through as values.

    `dates` (already parsed) and `symbols` name the session and symbol of a bad value."""
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    if s.dtype != pl.String:
        raise DataSourceError(f"{path}: column {s.name!r} has type {s.dtype}; expected numbers")
    try:  # fast path: every value is a plain number or missing
        return s.cast(pl.Float64, strict=True)
    except pl.exceptions.PolarsError:
        pass
    text = s.str.strip_chars()
    out = text.cast(pl.Float64, strict=False)
    bad = out.is_null() & text.is_not_null() & (text != "")
    if bad.any():
        row = int(bad.arg_true()[0])
        symbol = "symbol missing" if symbols[row] is None else symbols[row]
        raise _RowError(
            f"{path}: column {s.name!r} has non-numeric value {s[row]!r} at row {row + 1} "
            f"({dates[row]}, {symbol}); expected a number",
            row=row + 1,
        )
    return out


def _to_exchange_date(expr: pl.Expr, dtype: pl.DataType, exchange_tz: str) -> pl.Expr:
    """Date → itself; naive datetime → its date; aware datetime → date in `exchange_tz`."""
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone(exchange_tz)
        return expr.dt.date()
    return expr


def _between(expr: pl.Expr, lo: object, hi: object, dtype: pl.DataType) -> pl.Expr:
    """lo <= expr <= hi with literals typed like the column (so parquet can prune)."""
    cond = pl.lit(True)
    if lo is not None:
        cond = cond & (expr >= pl.lit(lo, dtype=dtype))
    if hi is not None:
        cond = cond & (expr <= pl.lit(hi, dtype=dtype))
    return cond


def _zone_label(zone: str) -> str:
    """Readable, comparable label: UTC spellings → 'UTC', offsets → 'UTC±HH:MM'."""
    if zone in _UTC_NAMES:
        return "UTC"
    return f"UTC{zone}" if zone[:1] in "+-" else zone


def _offset_text(offset: str | None) -> str:
    """'UTC offset +00:00' or 'no UTC offset', for mixed-zone messages."""
    return "no UTC offset" if offset is None else f"UTC offset {offset}"
