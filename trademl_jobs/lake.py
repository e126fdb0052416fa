"""The lake from the command line: list its tables, convert an older parquet lake to Delta,
re-read the exact data behind an MLflow run, and set DuckDB up to read the tables.

    python -m trademl_jobs.lake tables
    python -m trademl_jobs.lake migrate [--root PATH]
    python -m trademl_jobs.lake training-data RUN_ID [--out DIR]
    python -m trademl_jobs.lake duckdb
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from trademl.config import load_settings
from trademl.lake import LEDGER, Lake, LakeError


def _tables(lake: Lake) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    root = Path(lake.uri(LEDGER)).parent
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name == LEDGER or not lake.exists(entry.name):
            continue
        table = lake.table(entry.name)
        sessions = lake.partitions(entry.name)
        out.append(
            {
                "table": entry.name,
                "version": table.version(),
                "partitioned_by": table.metadata().partition_columns,
                "sessions": len(sessions),
                "first": sessions[0] if sessions else None,
                "last": sessions[-1] if sessions else None,
            }
        )
    return out


def _training_data(lake: Lake, run_id: str, out: Path | None) -> list[dict[str, object]]:
    from resources.mlflow import MlflowResource

    s = load_settings()
    client = MlflowResource(tracking_uri=s.mlflow_tracking_uri).client()
    tags = client.get_run(run_id).data.tags
    rows: list[dict[str, object]] = []
    for table, frame in lake.training_data(tags).items():
        data = frame.collect()
        row: dict[str, object] = {
            "table": table,
            "read": tags[f"lake.{table}"],
            "rows": data.height,
        }
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            data.write_parquet(out / f"{table}.parquet")
            row["file"] = str(out / f"{table}.parquet")
        rows.append(row)
    return rows


def _duckdb() -> str:
    """Install DuckDB's delta extension from its wheel (no download), for the `duckdb` CLI and
    Python alike: afterwards `delta_scan('<lake>/<table>')` works in both."""
    import duckdb
    from duckdb_extensions import import_extension

    con = duckdb.connect()
    import_extension("delta", con=con)
    (version,) = con.sql(
        "select extension_version from duckdb_extensions() where extension_name = 'delta'"
    ).fetchone() or ("?",)
    return f"DuckDB {duckdb.__version__}: delta extension {version} installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trademl_jobs.lake",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", help="the lake (default: the settings' lake root)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tables", help="every table with its Delta version and sessions")
    sub.add_parser("migrate", help="convert a parquet lake (date=…/part-0.parquet) to Delta")
    data = sub.add_parser("training-data", help="re-read the tables an MLflow run read")
    data.add_argument("run_id")
    data.add_argument("--out", type=Path, help="write one parquet file per table here")
    sub.add_parser("duckdb", help="install DuckDB's delta extension from its wheel")
    args = parser.parse_args(argv)

    if args.command == "duckdb":
        print(_duckdb())
        return 0
    root = args.root or load_settings().lake_root
    lake = Lake(root)
    try:
        if args.command == "tables":
            result: object = _tables(lake)
        elif args.command == "migrate":
            from trademl.lake_migrate import migrate

            result = [dataclasses.asdict(m) for m in migrate(root)]
        else:
            result = _training_data(lake, args.run_id, args.out)
    except LakeError as exc:
        raise SystemExit(f"lake: {exc}") from exc
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
