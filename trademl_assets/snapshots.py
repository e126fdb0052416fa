"""`lstm_snapshot`: the LSTM weekly-return forecaster as of each year end, trained only on the
sessions up to that year's last session, gated, registered `lstm` in MLflow.

A year's snapshot never changes when later years are appended (its samples end by the year
end). Idempotent: a version registered with the same version key (settings, window, universe,
code version) is returned as it is (`cached: true`), no training and no new version — the
training service (`POST /train/lstm`) relies on it.
"""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from resources.settings import SettingsResource
from trademl.models.forecasts.lstm import TrainedLSTM, lstm_decision, train_lstm
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG, lstm_params, version_key
from trademl.models.forecasts.weekly import weekly_samples
from trademl.provenance import data_fingerprint
from trademl_assets.k8s import gpu_step_tags
from trademl_assets.partitions import (
    PER_SESSION,
    SNAPSHOT_YEARS,
    snapshot_sessions,
    snapshot_window,
)

MODEL = "lstm"


def _cuda(s_env: str) -> str:
    if s_env != "gpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _champion_mse(mlflow: MlflowResource, samples: Any, val_from: str) -> tuple[float | None, str]:
    """The current champion's MSE on this training's validation weeks, and its version."""
    champ = mlflow.alias_version(MODEL, CHAMPION)
    if champ is None:
        return None, ""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.download(f"models:/{MODEL}/{champ.version}", tmp)
        model = TrainedLSTM.from_bytes((Path(path) / "lstm.pt").read_bytes())
    keep = samples.date >= pl.Series([val_from]).str.to_date().to_numpy()[0]
    pred = model.predict(samples.x[keep])
    return float(((pred - samples.y[keep]) ** 2).mean()), str(champ.version)


@dg.asset(
    partitions_def=SNAPSHOT_YEARS,
    backfill_policy=PER_SESSION,  # a training snapshot per run: each year its own version
    group_name="forecasts",
    pool="gpu",
    op_tags=gpu_step_tags(),
    deps=["bars"],
    kinds={"pytorch", "mlflow"},
    description="The LSTM weekly-return forecaster as of the year end (registered `lstm`).",
)
def lstm_snapshot(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    mlflow: MlflowResource,
    lake_store: LakeResource,
) -> dg.MaterializeResult:
    s = settings.get()
    lake = lake_store.lake
    sessions = snapshot_sessions(context.partition_key, s.lstm.train_years)
    span = snapshot_window(context.partition_key, s.lstm.train_years)
    keys = [d.isoformat() for d in sessions]
    missing = sorted(set(keys) - set(lake.partitions("bars")))
    if missing:
        raise dg.Failure(
            f"lstm_snapshot {context.partition_key}: {len(missing)} of the {len(keys)} sessions "
            f"of its window {span[0]}…{span[1]} have no bars (e.g. {missing[:3]}); materialize "
            "bars for the window first, or lower lstm.train_years"
        )
    key = version_key(MODEL, s, span)
    same = mlflow.version_tagged(MODEL, VERSION_KEY_TAG, key)
    if same is not None:
        context.log.info(f"lstm {context.partition_key}: v{same.version} (cached)")
        return dg.MaterializeResult(
            metadata={
                "version": str(same.version),
                "cached": True,
                "version_key": key,
                "mlflow_model_version": dg.MetadataValue.url(
                    mlflow.version_url(MODEL, same.version)
                ),
            }
        )
    bars = lake.scan("bars", keys).select("date", "symbol", "close").collect()
    c = s.lstm
    samples = weekly_samples(
        bars, sessions, seq_len=c.seq_len, horizon=c.horizon, as_of=sessions[-1]
    )
    trained = train_lstm(samples, lstm_params(s, _cuda(s.env)))
    prior_mse, prior = _champion_mse(mlflow, samples, trained.val_dates[0])
    decision = lstm_decision(
        trained.metrics, prior_mse, min_gain=c.promotion.min_gain, min_ic_t=c.promotion.min_ic_t
    )
    metrics = dict(trained.metrics)
    if prior_mse is not None:
        metrics["champion_val_mse"] = prior_mse
    with (
        mlflow.start_run_for(
            context,
            data_fingerprint=data_fingerprint(bars),
            run_name=f"lstm@{context.partition_key}",
            tags={"trademl.model": MODEL, VERSION_KEY_TAG: key},
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run.log_params({"seq_len": c.seq_len, "horizon": c.horizon, "hidden": c.hidden})
        run.log_metrics(metrics)
        (Path(tmp) / "lstm.pt").write_bytes(trained.to_bytes())
        uri = run.log_model_files(tmp, "model")
        run.set_tags({"trademl.gate": "passed" if decision.promote else "refused"})
    version = mlflow.register(run.run_id, uri, MODEL)
    mlflow.tag_version(
        MODEL,
        version,
        {
            VERSION_KEY_TAG: key,
            "trademl.snapshot": context.partition_key,
            "trademl.window_start": span[0],
            "trademl.window_end": span[1],
            "trademl.prior_version": prior,
            "trademl.promoted": decision.promote,
            "dagster.run_id": context.run_id,
        },
    )
    if decision.promote:
        mlflow.promote(MODEL, version, decision.reasons())
    else:
        mlflow.refuse(MODEL, version, decision.reasons())
    context.log.info(f"lstm {context.partition_key}: v{version}, {decision.summary()}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "cached": False,
            "version_key": key,
            "promoted": decision.promote,
            "verdict": decision.summary(),
            "window": f"{span[0]}…{span[1]}",
            **{k: dg.MetadataValue.float(float(v)) for k, v in metrics.items()},
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(run.run_id)),
            "mlflow_model_version": dg.MetadataValue.url(mlflow.version_url(MODEL, version)),
        }
    )
