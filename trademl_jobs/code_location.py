"""The Dagster code location's contents, loaded through `trademl_jobs.definitions` (which
pauses the cyclic collector around the load)."""

from __future__ import annotations

import json
import os

import dagster as dg

from resources.broker import BrokerResource
from resources.lake import LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from trademl.config import Settings, config_path, fixed_at_load
from trademl_assets import (
    agents,
    data,
    execution,
    features,
    forecasts,
    labels,
    offline_rl,
    portfolio,
    report,
    shadow,
    snapshots,
)
from trademl_assets.partitions import SETTINGS
from trademl_assets.registry import ALPHA, SIZING, STACKER, sleeve_assets
from trademl_jobs.automation import (
    champion_automation_sensor,
    new_files_sensor,
    promotion_rescore_sensor,
    sleeve_retrain_sensor,
)
from trademl_jobs.event_log import DAGSTER_ENV
from trademl_jobs.jobs import (
    AGENT_JOBS,
    alpha_train_job,
    daily_job,
    daily_schedule,
    lstm_train_job,
    patchtst_train_job,
    reconciliation_job,
    reconciliation_schedule,
    rescore_job,
    sizing_train_job,
    trade_job,
    weekly_retrain_schedule,
    weekly_sizing_schedule,
)
from trademl_jobs.sensors import live_ic_retrain_sensor, trade_after_daily_sensor

# a range run's asset events as one batch and one "planned" event per asset, not per session
# (trademl_jobs/event_log.py); the process that loads the code location creates and runs it
for _key, _value in DAGSTER_ENV.items():
    os.environ.setdefault(_key, _value)


def executor_for(env: str) -> dg.ExecutorDefinition:
    """The executor wiring of a deployment: in-process locally, a process per step elsewhere."""
    if env == "local":
        return dg.in_process_executor
    if env == "gpu":
        return dg.multiprocess_executor.configured({"max_concurrent": 2})
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise RuntimeError(
            "TRADEML_ENV=prod runs a pod per step and needs dagster-k8s: "
            "pip install 'trademl[prod]'"
        ) from exc
    from trademl_assets.k8s import k8s_settings, validate_executor_config, validate_step_config

    cfg = validate_executor_config(k8s_settings()["executor"], "configs/k8s.yaml executor")
    validate_step_config(k8s_settings()["gpu_step"], "configs/k8s.yaml gpu_step")
    return k8s_job_executor.configured(cfg)


def resources_for(settings: Settings) -> dict[str, object]:
    """Resources built from the settings file in force."""
    store = LakeResource(root=settings.lake_root)
    return {
        "lake": LakeIOManager(store=store),
        "lake_store": store,
        "settings": SettingsResource(
            config_path=str(config_path()), fixed=json.dumps(fixed_at_load(settings))
        ),
        "market_data": MarketDataResource.from_settings(settings),
        "broker": BrokerResource(
            kind=settings.execution.broker,
            base_url=settings.execution.base_url or "",
            paper=settings.execution.paper,
            allow_live=settings.execution.allow_live,
            dry_run_equity=settings.execution.capital,
        ),
        "mlflow": MlflowResource.from_settings(settings),
    }


ASSETS = [
    *dg.load_assets_from_modules([data, features, labels, execution]),
    forecasts.oos_signals,
    *sleeve_assets(),
    portfolio.alpha_scores_asset(ALPHA, STACKER),
    portfolio.target_weights,
    portfolio.backtest,
    shadow.shadow_weights_asset(ALPHA, STACKER, SIZING),
    shadow.shadow_books,
    report.daily_report,
    offline_rl.rl_trajectories,
    snapshots.lstm_snapshot,
    snapshots.patchtst_snapshot,
    *agents.AGENT_ASSETS.values(),
]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[
        daily_job,
        alpha_train_job,
        sizing_train_job,
        trade_job,
        reconciliation_job,
        rescore_job,
        lstm_train_job,
        patchtst_train_job,
        *AGENT_JOBS,
    ],
    schedules=[
        daily_schedule,
        weekly_retrain_schedule,
        weekly_sizing_schedule,
        reconciliation_schedule,
    ],
    sensors=[
        live_ic_retrain_sensor,
        trade_after_daily_sensor,
        sleeve_retrain_sensor,
        promotion_rescore_sensor,
        new_files_sensor,
        champion_automation_sensor,
    ],
    resources=resources_for(SETTINGS),
    executor=executor_for(SETTINGS.env),
)
