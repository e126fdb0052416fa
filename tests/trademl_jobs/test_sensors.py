"""The live-IC retrain sensor asks for a retrain only when the model-served alpha decays."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl

from resources.lake import Lake, LakeResource
from resources.settings import SettingsResource
from trademl.models.equities.monitor import live_rank_ic
from trademl_assets.partitions import SESSIONS
from trademl_jobs.sensors import live_ic_retrain_sensor

KEYS = SESSIONS.get_partition_keys()[-60:]


def _frames(sign: float, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    rows_s, rows_l = [], []
    for k in KEYS:
        d = dt.date.fromisoformat(k)
        y = rng.normal(size=20)
        score = sign * y + rng.normal(scale=0.5, size=20)
        for i in range(20):
            rows_s.append((d, f"S{i:02d}", float(score[i])))
            rows_l.append((d, f"S{i:02d}", d, "fwd_ret_5", float(y[i])))
    scores = pl.DataFrame(rows_s, schema=["date", "symbol", "score"], orient="row").with_columns(
        pl.lit("stacker").alias("path")
    )
    labels = pl.DataFrame(rows_l, schema=["date", "symbol", "t1", "name", "value"], orient="row")
    return scores, labels


def test_live_rank_ic_against_hand_truth():
    good, labels = _frames(1.0)
    ic, n = live_rank_ic(good, labels, label="fwd_ret_5")
    assert n == 60 and ic > 0.7
    bad, _ = _frames(-1.0)
    assert live_rank_ic(bad, labels, label="fwd_ret_5")[0] < -0.7
    ic_none, n_none = live_rank_ic(good, labels.head(0), label="fwd_ret_5")
    assert np.isnan(ic_none) and n_none == 0


def _evaluate(tmp_path, sign: float):
    scores, labels = _frames(sign)
    lake = Lake(tmp_path / "lake")
    lake.write_partitions("alpha_scores", scores, KEYS, "date")
    lake.write_partitions("labels", labels, KEYS, "t1")
    ctx = dg.build_sensor_context(
        resources={
            "lake_store": LakeResource(root=str(tmp_path / "lake")),
            "settings": SettingsResource(),
        }
    )
    return live_ic_retrain_sensor(ctx)


def test_decayed_champion_triggers_a_retrain_as_of_the_latest_session(tmp_path):
    request = _evaluate(tmp_path, -1.0)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == KEYS[-1]
    assert "live rank IC" in request.tags["trademl/reason"]


def test_healthy_champion_is_left_alone(tmp_path):
    assert isinstance(_evaluate(tmp_path, 1.0), dg.SkipReason)


def test_a_book_served_by_the_fit_free_feature_is_not_a_model_to_retrain(tmp_path):
    scores, labels = _frames(-1.0)
    lake = Lake(tmp_path / "lake")
    lake.write_partitions(
        "alpha_scores", scores.with_columns(pl.lit("fit_free").alias("path")), KEYS, "date"
    )
    lake.write_partitions("labels", labels, KEYS, "t1")
    ctx = dg.build_sensor_context(
        resources={
            "lake_store": LakeResource(root=str(tmp_path / "lake")),
            "settings": SettingsResource(),
        }
    )
    assert isinstance(live_ic_retrain_sensor(ctx), dg.SkipReason)


def test_no_history_skips(tmp_path):
    ctx = dg.build_sensor_context(
        resources={"lake_store": LakeResource(root=str(tmp_path)), "settings": SettingsResource()}
    )
    assert isinstance(live_ic_retrain_sensor(ctx), dg.SkipReason)


@dg.op
def _noop() -> None:
    return None


@dg.job
def _finished() -> None:
    _noop()


def _trade_request(partition: str | None):
    from trademl_jobs.sensors import trade_after_daily_sensor

    tags = {"dagster/partition": partition} if partition else {}
    with dg.instance_for_test() as instance:
        result = _finished.execute_in_process(instance=instance, tags=tags)
        ctx = dg.build_run_status_sensor_context(
            sensor_name="trade_after_daily_sensor",
            dagster_event=result.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        )
        return trade_after_daily_sensor(ctx)


def test_trade_follows_a_daily_run_of_the_latest_session_only():
    latest = SESSIONS.get_last_partition_key()
    req = _trade_request(latest)
    assert isinstance(req, dg.RunRequest) and req.partition_key == latest
    assert req.run_key == f"trade-{latest}"  # one trade run per session, however often
    for past in (SESSIONS.get_partition_keys()[-2], None):  # a backfill never trades
        assert isinstance(_trade_request(past), dg.SkipReason)
