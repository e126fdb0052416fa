"""`<model>_snapshot` (`lstm_snapshot`, `patchtst_snapshot`): a sequence forecaster as of each
year end, trained only on the sessions up to that year's last session, gated, registered in
MLflow under the model's name.

A year's snapshot never changes when later years are appended (its samples end by the year
end). Idempotent: a version registered with the same version key (settings, window, universe,
code version) is returned as it is (`cached: true`), no training and no new version — the
training service (`POST /train/<model>`) relies on it.
"""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from resources.lake import LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.models.forecasts.sequence import (
    TrainedForecaster,
    forecaster_decision,
    train_forecaster,
)
from trademl.models.forecasts.snapshot import (
    MODELS,
    VERSION_KEY_TAG,
    sequence_params,
    version_key,
)
from trademl.models.forecasts.weekly import WeeklySamples, read_channels, weekly_samples
from trademl.provenance import data_fingerprint
from trademl.validation.evaluation import evaluate, evaluation_figures
from trademl_assets.k8s import gpu_step_tags
from trademl_assets.metadata import figure_metadata
from trademl_assets.partitions import (
    PER_SESSION,
    SNAPSHOT_YEARS,
    snapshot_sessions,
    snapshot_window,
)


def torch_device(s: Settings) -> str:
    """cuda when the gpu deployment runs on a host torch sees a GPU on; cpu otherwise."""
    if s.env != "gpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _champion_mse(
    mlflow: MlflowResource, model: str, samples: WeeklySamples, val_from: str
) -> tuple[float | None, str]:
    """The current champion's MSE on this training's validation weeks, and its version."""
    champ = mlflow.alias_version(model, CHAMPION)
    if champ is None:
        return None, ""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.download(f"models:/{model}/{champ.version}", tmp)
        old = TrainedForecaster.from_bytes((Path(path) / f"{model}.pt").read_bytes())
    if old.params.n_channels != samples.x.shape[2]:  # other channels: not comparable
        return None, str(champ.version)
    keep = samples.date >= np.datetime64(val_from)
    pred = old.predict(samples.x[keep])
    return float(((pred - samples.y[keep]) ** 2).mean()), str(champ.version)


def snapshot_asset(model: str) -> dg.AssetsDefinition:
    """The yearly snapshot asset of sequence forecaster `model` ("lstm" or "patchtst")."""
    if model not in MODELS:
        raise ValueError(f"snapshot_asset: model must be one of {MODELS}, got {model!r}")

    @dg.asset(
        name=f"{model}_snapshot",
        partitions_def=SNAPSHOT_YEARS,
        backfill_policy=PER_SESSION,  # a training snapshot per run: each year its own version
        group_name="forecasts",
        pool="gpu",
        op_tags=gpu_step_tags(),
        deps=["bars"],
        kinds={"pytorch", "mlflow"},
        description=f"The `{model}` weekly-return forecaster as of the year end (registered "
        f"`{model}`).",
    )
    def _snapshot(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        mlflow: MlflowResource,
        lake_store: LakeResource,
    ) -> dg.MaterializeResult:
        s = settings.get()
        c = getattr(s, model)
        lake = lake_store.lake
        year = context.partition_key
        sessions = snapshot_sessions(year, c.train_years)
        span = snapshot_window(year, c.train_years)
        keys = [d.isoformat() for d in sessions]
        missing = sorted(set(keys) - set(lake.partitions("bars")))
        if missing:
            raise dg.Failure(
                f"{model}_snapshot {year}: {len(missing)} of the {len(keys)} sessions of its "
                f"window {span[0]}…{span[1]} have no bars (e.g. {missing[:3]}); materialize "
                f"bars for the window first, or lower {model}.train_years"
            )
        key = version_key(model, s, span)
        same = mlflow.version_tagged(model, VERSION_KEY_TAG, key)
        if same is not None:
            context.log.info(f"{model} {year}: v{same.version} (cached)")
            url = mlflow.version_url(model, same.version)
            return dg.MaterializeResult(
                metadata={
                    "version": str(same.version),
                    "cached": True,
                    "version_key": key,
                    "mlflow_model_version": dg.MetadataValue.url(url),
                }
            )
        bars = lake.scan("bars", keys).collect()
        extra = read_channels(s.data.channels_path, c.channels, sessions[0], sessions[-1])
        samples = weekly_samples(
            bars,
            sessions,
            seq_len=c.seq_len,
            horizon=c.horizon,
            as_of=sessions[-1],
            channels=c.channels,
            extra=extra,
        )
        trained = train_forecaster(samples, sequence_params(model, s, torch_device(s)))
        prior_mse, prior = _champion_mse(mlflow, model, samples, trained.val_dates[0])
        decision = forecaster_decision(
            trained.metrics,
            prior_mse,
            min_gain=c.promotion.min_gain,
            min_ic_t=c.promotion.min_ic_t,
        )
        metrics = dict(trained.metrics)
        if prior_mse is not None:
            metrics["champion_val_mse"] = prior_mse
        # the evaluation suite on the validation weeks (what the gate reads)
        val = samples.date >= np.datetime64(trained.val_dates[0])
        ev = evaluate(
            trained.predict(samples.x[val]), samples.y[val], samples.date[val], k=s.evaluation.k
        )
        metrics |= {f"eval_{k}": v for k, v in ev.metrics.items() if np.isfinite(v)}
        figures = evaluation_figures(ev, f"{model} {year}")
        import matplotlib.pyplot as plt

        with (
            mlflow.start_run_for(
                context,
                data_fingerprint=data_fingerprint(bars),
                run_name=f"{model}@{year}",
                tags={"trademl.model": model, VERSION_KEY_TAG: key},
            ) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            run.log_params({**c.model_dump(exclude={"promotion"}), "channels": c.channels})
            run.log_metrics(metrics)
            for path, fig in figures.items():
                run.log_figure(fig, path)
                plt.close(fig)  # still saved for the metadata below
            (Path(tmp) / f"{model}.pt").write_bytes(trained.to_bytes())
            uri = run.log_model_files(tmp, "model")
            run.set_tags({"trademl.gate": "passed" if decision.promote else "refused"})
        version = mlflow.register(run.run_id, uri, model)
        mlflow.tag_version(
            model,
            version,
            {
                VERSION_KEY_TAG: key,
                "trademl.snapshot": year,
                "trademl.window_start": span[0],
                "trademl.window_end": span[1],
                "trademl.prior_version": prior,
                "trademl.promoted": decision.promote,
                "dagster.run_id": context.run_id,
            },
        )
        if decision.promote:
            mlflow.promote(model, version, decision.reasons())
        else:
            mlflow.refuse(model, version, decision.reasons())
        context.log.info(f"{model} {year}: v{version}, {decision.summary()}")
        return dg.MaterializeResult(
            metadata={
                "version": version,
                "cached": False,
                "version_key": key,
                "promoted": decision.promote,
                "verdict": decision.summary(),
                "window": f"{span[0]}…{span[1]}",
                "channels": ", ".join(c.channels),
                **{k: dg.MetadataValue.float(float(v)) for k, v in metrics.items()},
                "mlflow_run": dg.MetadataValue.url(mlflow.run_url(run.run_id)),
                "mlflow_model_version": dg.MetadataValue.url(mlflow.version_url(model, version)),
                **{
                    name.split("/")[-1].removesuffix(".png"): figure_metadata(fig)
                    for name, fig in figures.items()
                },
            }
        )

    return _snapshot


lstm_snapshot = snapshot_asset("lstm")
patchtst_snapshot = snapshot_asset("patchtst")
