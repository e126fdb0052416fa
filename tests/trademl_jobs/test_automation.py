"""Automation for every sleeve: per-sleeve retrain requests on decay (once per session), a
re-score when a champion moves as of the latest session (never for a backfill), and the
files sensor in the acceptance round trip — a week of one symbol's bars deleted → QC RED →
features blocked → files restored → the sensor asks for those sessions → GREEN → unblocked."""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.settings import MarketDataResource, SettingsResource
from trademl.models.policy.book import next_returns
from trademl_assets.partitions import SESSIONS
from trademl_jobs.automation import (
    RANGE_END,
    RANGE_START,
    new_files_sensor,
    promotion_rescore_sensor,
    sleeve_retrain_sensor,
)
from trademl_jobs.definitions import ASSETS, defs
from trademl_jobs.jobs import RESCORE_SELECTION

KEYS = SESSIONS.get_partition_keys()
LATEST = KEYS[-1]
WINDOW = KEYS[-60:]


def _ctx(tmp_path: Path, cursor: str | None = None, settings: SettingsResource | None = None):
    return dg.build_sensor_context(
        cursor=cursor,
        resources={
            "lake_store": LakeResource(root=str(tmp_path / "lake")),
            "settings": settings or SettingsResource(),
        },
    )


def _scores(sign: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(0)
    rows_s, rows_l = [], []
    for k in WINDOW:
        d = dt.date.fromisoformat(k)
        y = rng.normal(size=20)
        score = sign * y + rng.normal(scale=0.5, size=20)
        for i in range(20):
            rows_s.append((d, f"S{i:02d}", float(score[i]), "1", "champion"))
            rows_l.append((d, f"S{i:02d}", d, "fwd_ret_5", float(y[i])))
    scores = pl.DataFrame(
        rows_s, schema=["date", "symbol", "score", "model_version", "role"], orient="row"
    )
    labels = pl.DataFrame(rows_l, schema=["date", "symbol", "t1", "name", "value"], orient="row")
    return scores, labels


def test_a_decayed_alpha_sleeve_alone_is_retrained_once_per_session(tmp_path):
    lake = Lake(tmp_path / "lake")
    bad, labels = _scores(-1.0)
    good, _ = _scores(1.0)
    lake.write_partitions("equities_lgbm_scores", bad, WINDOW, "date")
    lake.write_partitions("linear_scores", good, WINDOW, "date")
    lake.write_partitions("labels", labels, WINDOW, "t1")
    result = sleeve_retrain_sensor(_ctx(tmp_path))
    assert isinstance(result, dg.SensorResult)
    (req,) = result.run_requests
    assert req.job_name == "alpha_train" and req.partition_key == LATEST
    assert req.run_key == f"retrain-equities_lgbm-{LATEST}"
    assert {k.to_user_string() for k in req.asset_selection} == {
        "equities_lgbm_model",
        "equities_lgbm_oof",
        "equities_lgbm_champion",
    }
    assert "live rank IC" in req.tags["trademl/reason"]
    # the next tick (same session) asks for nothing
    again = sleeve_retrain_sensor(_ctx(tmp_path, result.cursor))
    assert isinstance(again, dg.SkipReason) and "already asked" in again.skip_message


def _features(shift: float) -> tuple[pl.DataFrame, list[str]]:
    """Two features over the drift windows; the recent 20 sessions shifted by `shift` σ."""
    keys = KEYS[-(20 + 252) :]
    rng = np.random.default_rng(2)
    rows = []
    for i, k in enumerate(keys):
        d = dt.date.fromisoformat(k)
        move = shift if i >= len(keys) - 20 else 0.0
        for j in range(30):
            rows.append((d, f"S{j:02d}", rng.normal() + move, rng.normal() + move))
    return pl.DataFrame(rows, schema=["date", "symbol", "mom_20", "rvol_20"], orient="row"), keys


def test_drifted_inputs_retrain_every_alpha_sleeve_and_stable_ones_do_not(tmp_path):
    from trademl_assets.registry import ALPHA, STACKER

    feats, keys = _features(1.5)
    Lake(tmp_path / "lake").write_partitions("features", feats, keys, "date")
    result = sleeve_retrain_sensor(_ctx(tmp_path))
    names = {r.run_key.split("-")[1] for r in result.run_requests}
    assert names == {sp.name for sp in [*ALPHA, *([STACKER] if STACKER else [])]}
    assert all(
        "inputs drifted: 2 of 2 features" in r.tags["trademl/reason"] for r in result.run_requests
    )
    stable, _ = _features(0.0)
    Lake(tmp_path / "ok" / "lake").write_partitions("features", stable, keys, "date")
    assert isinstance(sleeve_retrain_sensor(_ctx(tmp_path / "ok")), dg.SkipReason)


def _sized_book(sign: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars of 10 names and a book whose sizes lean against (sign −1) or with (+1) the
    return each session then earned."""
    rng = np.random.default_rng(1)
    days = [dt.date.fromisoformat(k) for k in WINDOW]
    sym = [f"S{i}" for i in range(10)]
    px = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((len(days), 10)), axis=0))
    bars = pl.DataFrame(
        {
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), 10),
            "symbol": sym * len(days),
            "open": px.ravel(),
            "close": px.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    y = next_returns(bars, price="open", lag=1).select("session", "symbol", "y")
    book = (
        bars.select("date", "symbol")
        .join(y, left_on=["date", "symbol"], right_on=["session", "symbol"], how="left")
        .with_columns(
            pl.lit(0.05).alias("target_weight"),
            pl.lit("offline_rl@3").alias("sizer"),
        )
        .with_columns(
            (0.05 + sign * 0.01 * pl.col("y").fill_null(0.0).sign()).alias("weight"),
        )
        .drop("y")
    )
    return bars, book


def test_a_sizing_sleeve_whose_sizes_cost_the_book_is_retrained(tmp_path):
    lake = Lake(tmp_path / "lake")
    bars, bad = _sized_book(-1.0)
    lake.write_partitions("bars", bars, WINDOW, "date")
    lake.write_partitions("sized_weights", bad, WINDOW, "date")
    result = sleeve_retrain_sensor(_ctx(tmp_path))
    (req,) = result.run_requests
    assert req.job_name == "sizing_train" and req.run_key == f"retrain-offline_rl-{LATEST}"
    assert {k.to_user_string() for k in req.asset_selection} == {
        "offline_rl_policy",
        "offline_rl_champion",
    }
    _, good = _sized_book(1.0)
    other = Lake(tmp_path / "ok" / "lake")
    other.write_partitions("bars", bars, WINDOW, "date")
    other.write_partitions("sized_weights", good, WINDOW, "date")
    assert isinstance(sleeve_retrain_sensor(_ctx(tmp_path / "ok")), dg.SkipReason)


def test_a_promotion_of_the_latest_session_rescores_it_once_and_a_backfill_does_not():
    assert {
        k.to_user_string() for k in RESCORE_SELECTION.resolve(defs.resolve_asset_graph())
    }.isdisjoint({"orders", "daily_report", "blotter"})
    with dg.instance_for_test() as instance:

        def tick(cursor):
            return promotion_rescore_sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor)
            )

        instance.report_runless_asset_event(
            dg.AssetMaterialization("linear_champion", partition=KEYS[-5])
        )
        first = tick(None)
        assert not first.run_requests  # a backfilled promotion: nothing to re-score
        instance.report_runless_asset_event(
            dg.AssetMaterialization("equities_lgbm_champion", partition=LATEST)
        )
        second = tick(first.cursor)
        (req,) = second.run_requests
        assert req.partition_key == LATEST and req.run_key.startswith(f"rescore-{LATEST}-")
        assert "equities_lgbm_champion" in req.tags["trademl/reason"]
        assert not tick(second.cursor).run_requests  # seen: not asked again


# --- the files sensor and the acceptance round trip ---------------------------------------
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
SPAN = KEYS[-300:]  # the features need 259 sessions of bars before a session


def _write_months(folder: Path, bars: pl.DataFrame) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for (month,), part in bars.group_by(pl.col("date").dt.strftime("%Y-%m"), maintain_order=True):
        path = folder / f"bars_{month}.parquet"
        part.write_parquet(path)
        out[month] = path
    return out


def _files_env(tmp_path: Path) -> tuple[Path, dict, SettingsResource, pl.DataFrame]:
    start = dt.date.fromisoformat(SPAN[0])
    synth = MarketDataResource(n_symbols=4, seed=3, start=SPAN[0], missing_bar_rate=0.0).open()
    raw = synth.load(start, dt.date.fromisoformat(SPAN[-1]))
    names = sorted(raw.get_column("symbol").unique().to_list())
    bars = raw.with_columns(pl.col("symbol").replace(dict(zip(names, SYMBOLS, strict=True))))
    folder = tmp_path / "files"
    _write_months(folder, bars)
    cfg = tmp_path / "files.yaml"
    cfg.write_text(
        f"extends: local\ndata: {{source: files, path: {folder}, symbols: {json.dumps(SYMBOLS)}}}\n"
    )
    store = LakeResource(root=str(tmp_path / "lake"))
    settings = SettingsResource(config_path=str(cfg))
    resources = {
        **defs.resources,
        "lake": LakeIOManager(store=store),
        "lake_store": store,
        "settings": settings,
        "market_data": MarketDataResource(
            source="files", path=str(folder), symbols=SYMBOLS, start=SPAN[0]
        ),
    }
    return folder, resources, settings, bars


def _run(resources: dict, request_or_keys, selection=("bars", "features")):
    if isinstance(request_or_keys, dg.RunRequest):
        tags = dict(request_or_keys.tags)
        key = request_or_keys.partition_key
    else:
        keys = request_or_keys
        tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
        key = keys[0] if len(keys) == 1 else None
    return dg.materialize(
        ASSETS,
        selection=list(selection),
        partition_key=key,
        tags={k: v for k, v in tags.items() if k.startswith("dagster/asset_partition_range")},
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources,
        raise_on_error=False,
    )


def _qc_passed(result) -> bool:
    """No RED session: the check passed, or only warned (4 names are YELLOW: too few for a
    quintile book)."""
    (check,) = [e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["bars"]]
    return check.passed or check.severity == dg.AssetCheckSeverity.WARN


def test_files_sensor_round_trip_red_blocks_then_restored_files_are_ingested_green(tmp_path):
    folder, resources, settings, _ = _files_env(tmp_path)
    ctx = lambda cursor: _ctx(tmp_path, cursor, settings)  # noqa: E731
    first = new_files_sensor(ctx(None))
    (req,) = first.run_requests  # nothing ingested yet: the whole source
    assert (req.tags[RANGE_START], req.tags[RANGE_END]) == (SPAN[0], SPAN[-1])
    assert isinstance(new_files_sensor(ctx(first.cursor)), dg.SkipReason)  # no change
    assert _run(resources, SPAN, ("bars",)).success
    recent = SPAN[-30:]
    ok = _run(resources, recent)
    assert ok.success and _qc_passed(ok)

    # delete a week of one symbol from the month that holds it
    week = recent[10:15]
    month = week[0][:7]
    path = folder / f"bars_{month}.parquet"
    original = pl.read_parquet(path)
    days = [dt.date.fromisoformat(k) for k in week]
    original.filter(~((pl.col("symbol") == "BBB") & pl.col("date").is_in(days))).write_parquet(path)
    cut = new_files_sensor(ctx(first.cursor))
    (req,) = cut.run_requests
    month_keys = [k for k in SPAN if k.startswith(month)]
    start, end = req.tags.get(RANGE_START, req.partition_key), req.tags.get(RANGE_END)
    assert (start, end) == (month_keys[0], month_keys[-1])  # that month's file, no other
    red = _run(resources, req)
    assert not _qc_passed(red)
    assert "features" not in {
        e.asset_key.to_user_string() for e in red.get_asset_materialization_events()
    }  # blocked downstream
    # training's other input is blocked too, in a later run of its own: the labels of that
    # week refuse the RED sessions (and say what to do)
    refused = _run(resources, week, ("labels",))
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "RED in quality control" in failure.step_failure_data.user_failure_data.description

    # restore the file: the sensor asks again for that month, and it is GREEN
    original.write_parquet(path)
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    back = new_files_sensor(ctx(cut.cursor))
    (req2,) = back.run_requests
    assert req2.run_key != req.run_key
    green = _run(resources, req2)
    assert green.success and _qc_passed(green)
    made = {e.asset_key.to_user_string() for e in green.get_asset_materialization_events()}
    assert "features" in made
    assert isinstance(new_files_sensor(ctx(back.cursor)), dg.SkipReason)
    assert _run(resources, week, ("labels",)).success  # training's inputs are unblocked


def test_a_model_of_the_latest_session_brings_its_champion_once_and_a_past_one_does_not():
    """The champions' declarative condition, ticked as the automation sensor ticks it: a
    model materialized alone for the latest session requests that session's champion once;
    a past session's model (a backfill) requests nothing; a newer model requests it again,
    and a run that materialized both leaves nothing to do."""
    model, champion = dg.AssetKey("equities_lgbm_model"), dg.AssetKey("equities_lgbm_champion")
    keys = SESSIONS.get_partition_keys()
    latest, past = keys[-1], keys[-30]
    selection = dg.AssetSelection.assets(champion)

    def tick(instance, cursor):
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=cursor
        )
        requested = (
            sorted(result.get_requested_partitions(champion)) if result.total_requested else []
        )
        return requested, result.cursor

    with dg.DagsterInstance.ephemeral() as instance:
        requested, cursor = tick(instance, None)
        assert requested == []  # nothing trained yet: nothing to follow
        instance.report_runless_asset_event(dg.AssetMaterialization(model, partition=past))
        requested, cursor = tick(instance, cursor)
        assert requested == []
        instance.report_runless_asset_event(dg.AssetMaterialization(model, partition=latest))
        requested, cursor = tick(instance, cursor)
        assert requested == [latest]
        requested, cursor = tick(instance, cursor)
        assert requested == []  # not twice
        instance.report_runless_asset_event(dg.AssetMaterialization(champion, partition=latest))
        requested, cursor = tick(instance, cursor)
        assert requested == []  # the champion ran: handled
        instance.report_runless_asset_event(dg.AssetMaterialization(model, partition=latest))
        requested, cursor = tick(instance, cursor)
        assert requested == [latest]
        both = [dg.AssetMaterialization(k, partition=latest) for k in (model, champion)]
        for event in both:  # a training job runs the model and its champion together
            instance.report_runless_asset_event(event)
        requested, cursor = tick(instance, cursor)
        assert requested == []
