"""bars → quality → features → labels as Dagster assets, in an ephemeral instance."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from resources.lake import Lake
from resources.settings import MarketDataResource
from trademl.features import feature_names
from trademl_assets.partitions import FEATURE_WINDOW, SESSIONS, SETTINGS

KEYS = SESSIONS.get_partition_keys()


def _materialized(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in result.get_asset_materialization_events():
        name = ev.asset_key.to_user_string()
        out[name] = out.get(name, 0) + 1
    return out


def test_backfill_of_30_sessions_writes_30_partitions_and_rerun_is_byte_identical(run):
    keys = KEYS[:30]
    result = run(keys)
    assert result.success
    assert _materialized(result) == {"bars": 30, "features": 30, "labels": 30}
    lake = Lake(run.home / "lake")
    for asset in ("bars", "features", "labels"):
        assert lake.partitions(asset) == keys
    bars = lake.scan("bars", keys).collect()
    assert bars.get_column("date").n_unique() == 30
    assert set(bars.get_column("date").cast(pl.String).unique()) == set(keys)
    feats = lake.scan("features", keys).collect()
    assert feats.columns == ["date", "symbol", *feature_names(SETTINGS.features.cross_sectional)]
    assert feats.height == bars.height  # one feature row per bar, nothing dropped or invented
    labels = lake.scan("labels", keys).collect()
    assert labels.height > 0
    assert (labels.get_column("t1") > labels.get_column("date")).all()

    # the daily run of one session inside the range rewrites exactly the same content, as
    # one more commit of each table, and leaves every other session as it was
    key = keys[20]
    tables = ("bars", "features", "labels")
    before = {a: lake.scan(a, keys).collect().write_ipc(None).getvalue() for a in tables}
    versions = {a: lake.version(a) for a in tables}
    again = run([key])
    assert again.success
    assert {a: lake.scan(a, keys).collect().write_ipc(None).getvalue() for a in tables} == before
    assert {a: lake.version(a) for a in tables} == {a: v + 1 for a, v in versions.items()}


def test_daily_partition_equals_backfill_with_full_lookback(run):
    """The latest session's features from its lookback window match a long backfill's."""
    last = KEYS[-1]
    window = KEYS[-(FEATURE_WINDOW + 5) :]
    assert run(window, selection=["bars"]).success
    assert run(window[-6:], selection=["features"]).success  # a short range inside the window
    lake = Lake(run.home / "lake")
    ranged = lake.scan("features", [last]).collect()
    daily = run([last], selection=["bars", "features", "labels"])
    assert daily.success
    feats = lake.scan("features", [last]).collect()
    # same values; polars' incremental rolling sums differ in the last bits when windows start
    # at different sessions, so this compares to 1e-9 rather than byte for byte
    assert_frame_equal(feats, ranged, rel_tol=1e-9, abs_tol=1e-12)
    assert feats.height == 12
    # a full lookback: long-horizon features are available at the latest session
    assert feats.get_column("mom_12_1").null_count() == 0
    assert feats.get_column("dd_252").null_count() == 0
    labels = lake.scan("labels", [last]).collect()
    assert set(labels.get_column("t1").to_list()) == {dt.date.fromisoformat(last)}
    assert "fwd_ret_5" in set(labels.get_column("name").to_list())


def test_quality_check_reports_and_ground_truth_is_recorded(run):
    result = run(KEYS[:5], selection=["bars"])
    evals = result.get_asset_check_evaluations()
    assert [e.check_name for e in evals] == ["quality"]
    assert evals[0].metadata["status"].value in {"GREEN", "YELLOW"}
    truth = json.loads((run.home / "lake" / "bars_ground_truth.json").read_text())
    # nothing but the Delta table lives in a table's folder: polars reads it as it is
    bars = run.home / "lake" / "bars"
    assert {p.name for p in bars.iterdir()} == {"_delta_log", *(f"date={k}" for k in KEYS[:5])}
    assert pl.scan_delta(str(bars)).select(pl.len()).collect().item() > 0
    assert truth["alpha_mode"] == "planted" and truth["alpha_feature"] == "mom_20"
    assert truth["last_session"] == KEYS[4]


def _write_csv(path, sessions: list[str], bad: tuple[str, str] | None = None) -> None:
    rows = []
    for i, d in enumerate(sessions):
        for j, sym in enumerate(["AAA", "BBB", "CCC"]):
            px = 10.0 + i * 0.1 + j
            rows.append((d, sym, px, px + 0.5, px - 0.5, px + 0.1, 1000.0 + i))
    frame = pl.DataFrame(
        rows, schema=["date", "symbol", "open", "high", "low", "close", "volume"], orient="row"
    )
    if bad:
        frame = frame.with_columns(
            pl.when((pl.col("date") == bad[0]) & (pl.col("symbol") == bad[1]))
            .then(-1.0)
            .otherwise(pl.col("close"))
            .alias("close")
        )
    frame.write_csv(path)


def test_red_session_blocks_downstream_and_says_why(run, tmp_path):
    keys = KEYS[:8]
    csv = tmp_path / "bars.csv"
    _write_csv(csv, keys, bad=(keys[-1], "BBB"))
    market = MarketDataResource(source="files", path=str(csv), start=keys[0])
    result = run(keys, market=market, raise_on_error=False)
    assert _materialized(result) == {"bars": 8}  # bars are kept as received, nothing downstream
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["status"].value == "RED"
    assert keys[-1] in check.description and "BBB" in check.description
    assert "prices_valid" in check.description
    # each session's verdict is kept for reports and order tripwires
    qc = Lake(run.home / "lake").scan("bars_qc", keys).collect()
    assert qc.get_column("date").cast(pl.String).to_list() == keys
    last = qc.row(-1, named=True)
    assert last["status"] == "RED" and "BBB" in last["reasons"]
    assert set(qc.get_column("status").to_list()[:-1]) <= {"GREEN", "YELLOW"}

    # a later run cannot build on the RED bars either: features and labels refuse, and say why
    for asset in ("features", "labels"):
        later = run([keys[-1]], market=market, selection=[asset], raise_on_error=False)
        assert not later.success and _materialized(later) == {}
        (failure,) = [e for e in later.all_events if e.event_type_value == "STEP_FAILURE"]
        text = failure.step_failure_data.user_failure_data.description
        assert f"{asset}: 1 session(s)" in text and keys[-1] in text and "BBB" in text
    # the sessions before it are clean, so their features still build
    assert run([keys[-2]], market=market, selection=["features"]).success


def test_clean_files_source_runs_through(run, tmp_path):
    keys = KEYS[:8]
    csv = tmp_path / "bars.csv"
    _write_csv(csv, keys)
    market = MarketDataResource(source="files", path=str(csv), start=keys[0])
    result = run(keys, market=market)
    assert _materialized(result) == {"bars": 8, "features": 8, "labels": 8}
    feats = Lake(run.home / "lake").scan("features", keys).collect()
    assert feats.height == 24
    mom5 = feats.filter(pl.col("date") == dt.date.fromisoformat(keys[6]), symbol="AAA")
    # close_i = 10.1 + 0.1 i for AAA, so mom_5 at i = 6 is 10.7 / 10.2 − 1
    assert abs(mom5.item(0, "mom_5") - (10.7 / 10.2 - 1)) < 1e-12
