"""`<algo>_<forecaster>_agent` (`ppo_lstm_agent`, …, `sac_patchtst_agent`): a PPO or SAC
allocation agent as of a year end, over the `agents.top_n` most liquid names as of its window
start, its state reading the forecaster's snapshot of the previous year end for every week —
never a model that saw the week. Registered in MLflow as `<algo>_<forecaster>` (archive, ONNX
graph, names), gated (PPO by held-out Sharpe, SAC by held-out CAGR, absolute bars that hold
for a first agent too).

The run config's `mode` picks `full` (from scratch) or `finetune` (from the champion). The
version key (`trademl.models.agents.snapshot.version_key`) makes a run idempotent: the same
key returns the registered version (`cached: true`) — what `POST /train/<name>/<mode>`
answers at once.
"""

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from resources.lake import LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.lake import session_keys
from trademl.models.agents.env import WeeklyPanel
from trademl.models.agents.export import ONNX_FILE, load_agent, save_agent
from trademl.models.agents.panel import (
    MOMENTUM_SESSIONS,
    liquid_names,
    panel_weeks,
    snapshot_forecasts,
    weekly_panel,
)
from trademl.models.agents.pipeline import fit_agent
from trademl.models.agents.snapshot import AGENTS, MODES, agent_params, split_name, version_key
from trademl.models.forecasts.sequence import TrainedForecaster
from trademl.models.forecasts.snapshot import VERSION_KEY_TAG
from trademl.models.forecasts.snapshot import version_key as forecaster_key
from trademl.models.forecasts.weekly import read_channels, weekly_samples
from trademl.provenance import data_fingerprint
from trademl_assets.k8s import gpu_step_tags
from trademl_assets.partitions import (
    PER_SESSION,
    PRIOR_SNAPSHOT_YEAR,
    SNAPSHOT_YEARS,
    agent_sessions,
    prior_snapshot_keys,
    snapshot_window,
)
from trademl_assets.snapshots import torch_device

SYMBOLS_TAG = "trademl.symbols_used"


class PlanError(ValueError):
    """A training request that cannot run; `status` is the HTTP answer the service gives."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AgentPlan:
    """What an agent run trains on and from, resolved before anything is launched."""

    name: str
    mode: str
    year: str
    lead: list = field(repr=False)
    window: list = field(repr=False)
    snapshots: dict[str, str]
    init_version: str | None
    key: str

    @property
    def span(self) -> tuple[str, str]:
        return self.window[0].isoformat(), self.window[-1].isoformat()


def plan_agent(s: Settings, mlflow: MlflowResource, name: str, mode: str, year: str) -> AgentPlan:
    """Resolve an agent run: its window, the forecaster snapshots its state reads (each must be
    registered under the current forecaster settings), the champion a finetune starts from,
    and the version key. Raises `PlanError` saying what to do first."""
    try:
        _, forecaster = split_name(name)
    except ValueError as exc:
        raise PlanError(404, str(exc)) from exc
    if mode not in MODES:
        raise PlanError(422, f"mode must be one of {MODES}, got {mode!r}")
    keys = SNAPSHOT_YEARS.get_partition_keys()
    if year not in keys:
        shown = f"{keys[0]}…{keys[-1]}" if keys else "none yet"
        raise PlanError(404, f"no {name} partition {year!r}: years are {shown}")
    a, c = s.agents, getattr(s, forecaster)
    lead, window = agent_sessions(year, a.train_years, c.seq_len + MOMENTUM_SESSIONS)
    prior = prior_snapshot_keys(year, a.train_years)
    early = [k for k in prior if k not in keys]
    if early:
        raise PlanError(
            409,
            f"{name} {year} reads the {forecaster} snapshots of {', '.join(prior)}, and "
            f"{', '.join(early)} precede the first snapshot year {keys[0]}: ask for a later "
            "year or lower agents.train_years",
        )
    snapshots, missing = {}, []
    for k in prior:
        v = snapshot_version(s, mlflow, forecaster, k)
        if v is None:
            missing.append(k)
        else:
            snapshots[k] = v
    if missing:
        raise PlanError(
            409,
            f"{name} {year} reads the {forecaster} snapshots of {', '.join(prior)}; "
            f"{', '.join(missing)} are not trained under the current {forecaster} settings: "
            f'train them first (POST /train/{forecaster} with {{"year": {missing[0]}}}, or '
            f"materialize {forecaster}_snapshot for {', '.join(missing)})",
        )
    init = None
    if mode == "finetune":
        champ = mlflow.alias_version(name, CHAMPION)
        if champ is None:
            raise PlanError(
                400,
                f"a finetune starts from the champion of {name}, and there is none yet: train "
                "it in full mode first (a version becomes champion only by passing its gate)",
            )
        n = len(champ.tags.get(SYMBOLS_TAG, "").split(","))
        if n != a.top_n:
            raise PlanError(
                409,
                f"the {name} champion v{champ.version} trades {n} names and agents.top_n is "
                f"{a.top_n}: a finetune keeps the shape; train in full mode instead",
            )
        init = str(champ.version)
    key = version_key(
        name, mode, s, (window[0].isoformat(), window[-1].isoformat()), snapshots, init
    )
    return AgentPlan(name, mode, year, lead, window, snapshots, init, key)


def missing_bars(plan: AgentPlan, partitions: set[str]) -> str | None:
    """What to backfill when the window lacks bars (None: nothing)."""
    missing = set(session_keys(plan.window)) - partitions
    if not missing:
        return None
    return (
        f"{len(missing)} of the {len(plan.window)} sessions of the {plan.name} {plan.year} "
        f"window {plan.span[0]}…{plan.span[1]} have no bars; backfill them first: dagster asset "
        "materialize -m trademl_jobs.definitions --select bars --partition-range "
        f"{min(missing)}...{max(missing)}"
    )


def _load_version(mlflow: MlflowResource, name: str, version: str, tmp: str) -> Path:
    """A registered version's files, downloaded under `tmp`."""
    dst = Path(tmp) / f"{name}-{version}"
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.download(f"models:/{name}/{version}", dst))


def forecast_panel(
    s: Settings,
    mlflow: MlflowResource,
    bars: pl.DataFrame,
    forecaster: str,
    names: list[str],
    days: list,
    first: dt.date,
    snapshots: dict[str, str],
    tmp: str,
    open_end: bool = False,
) -> WeeklyPanel:
    """The weekly panel of `names` from week end `first` on, each week's forecasts by the
    `forecaster` snapshot of the previous year end (`snapshots`: year → version)."""
    c = getattr(s, forecaster)
    extra = read_channels(s.data.channels_path, c.channels, days[0], days[-1])
    mine = bars.filter(pl.col("symbol").is_in(names))
    samples = weekly_samples(
        mine,
        days,
        seq_len=c.seq_len,
        horizon=c.horizon,
        channels=c.channels,
        extra=extra,
        with_target=False,
    )
    predictors = {}
    for year, version in snapshots.items():
        folder = _load_version(mlflow, forecaster, version, tmp)
        predictors[int(year)] = TrainedForecaster.from_bytes(
            (folder / f"{forecaster}.pt").read_bytes()
        ).predict
    weeks = [days[p] for p, _ in panel_weeks(days, first, open_end)]
    forecasts = snapshot_forecasts(samples, weeks, names, predictors)
    return weekly_panel(mine, days, names, first, forecasts, open_end)


def build_panel(
    s: Settings, mlflow: MlflowResource, bars: pl.DataFrame, plan: AgentPlan, tmp: str
) -> WeeklyPanel:
    """The plan's weekly panel: the top-N names as of the window start."""
    a = s.agents
    _, forecaster = split_name(plan.name)
    names = liquid_names(bars, plan.window[0], a.top_n, a.liquidity_sessions)
    days = plan.lead + plan.window
    return forecast_panel(
        s, mlflow, bars, forecaster, names, days, plan.window[0], plan.snapshots, tmp
    )


def snapshot_version(s: Settings, mlflow: MlflowResource, forecaster: str, year: str) -> str | None:
    """The `forecaster` snapshot of `year` registered under the current settings, if any."""
    window = snapshot_window(year, getattr(s, forecaster).train_years)
    v = mlflow.version_tagged(forecaster, VERSION_KEY_TAG, forecaster_key(forecaster, s, window))
    return None if v is None else str(v.version)


class AgentRunConfig(dg.Config):
    """`mode`: full (from scratch) or finetune (from the champion's weights)."""

    mode: str = "full"


def agent_asset(name: str) -> dg.AssetsDefinition:
    """The yearly asset of agent `name` (e.g. "ppo_lstm")."""
    algo, forecaster = split_name(name)

    @dg.asset(
        name=f"{name}_agent",
        partitions_def=SNAPSHOT_YEARS,
        backfill_policy=PER_SESSION,
        group_name="agents",
        pool="gpu",
        op_tags=gpu_step_tags(),
        deps=["bars", dg.AssetDep(f"{forecaster}_snapshot", partition_mapping=PRIOR_SNAPSHOT_YEAR)],
        kinds={"pytorch", "onnx", "mlflow"},
        description=f"The {algo.upper()} allocation agent on `{forecaster}` snapshot forecasts "
        f"as of the year end (registered `{name}`).",
    )
    def _agent(
        context: dg.AssetExecutionContext,
        config: AgentRunConfig,
        settings: SettingsResource,
        mlflow: MlflowResource,
        lake_store: LakeResource,
    ) -> dg.MaterializeResult:
        s = settings.get()
        try:
            plan = plan_agent(s, mlflow, name, config.mode, context.partition_key)
        except PlanError as exc:
            raise dg.Failure(str(exc)) from exc
        same = mlflow.version_tagged(name, VERSION_KEY_TAG, plan.key)
        if same is not None:
            context.log.info(f"{name} {plan.year} {plan.mode}: v{same.version} (cached)")
            return dg.MaterializeResult(
                metadata={"version": str(same.version), "cached": True, "version_key": plan.key}
            )
        lake = lake_store.lake
        gap = missing_bars(plan, set(lake.partitions("bars")))
        if gap:
            raise dg.Failure(gap)
        keys = [
            k for k in session_keys(plan.lead + plan.window) if k in set(lake.partitions("bars"))
        ]
        bars = lake.scan("bars", keys).collect()
        return _train(context, s, mlflow, plan, bars)

    return _agent


def _train(
    context: dg.AssetExecutionContext,
    s: Settings,
    mlflow: MlflowResource,
    plan: AgentPlan,
    bars: pl.DataFrame,
) -> dg.MaterializeResult:
    """Train, gate, register and promote or refuse the planned agent."""
    from trademl.backtest.plots import equity_png
    from trademl_assets.metadata import png_metadata

    name, a = plan.name, s.agents
    algo, _ = split_name(name)
    params = agent_params(s, algo, plan.mode, torch_device(s))
    champ = mlflow.alias_version(name, CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        panel = build_panel(s, mlflow, bars, plan, tmp)
        champion = init = None
        if champ is not None and len(champ.tags.get(SYMBOLS_TAG, "").split(",")) == panel.n_names:
            champion, _ = load_agent(
                _load_version(mlflow, name, str(champ.version), tmp), params.device
            )
            init = champion if plan.mode == "finetune" else None
        result = fit_agent(
            panel,
            params,
            mode=plan.mode,
            held_out_weeks=a.held_out_weeks,
            finetune_weeks=a.finetune_weeks,
            init=init,
            champion=champion,
            margin=a.promotion.margin,
            min_sharpe=a.promotion.min_sharpe,
        )
        png = equity_png(
            np.cumprod(1.0 + result.held_out_returns),
            np.cumprod(1.0 + result.equal_weight_returns),
            list(result.held_out_weeks),
            label=name,
            benchmark_label="equal weight",
        )
        files = Path(tmp) / "model"
        save_agent(result.model, params, list(panel.symbols), files)
        with mlflow.start_run_for(
            context,
            data_fingerprint=data_fingerprint(bars),
            run_name=f"{name}@{plan.year}:{plan.mode}",
            tags={"trademl.model": name, VERSION_KEY_TAG: plan.key},
        ) as run:
            run.log_params({**a.model_dump(exclude={"promotion"}), "mode": plan.mode})
            run.log_metrics(result.metrics)
            (Path(tmp) / "held_out_equity.png").write_bytes(png)
            run.log_artifact(Path(tmp) / "held_out_equity.png", "plots")
            uri = run.log_model_files(files, "model")
            run.set_tags({"trademl.gate": "passed" if result.decision.promote else "refused"})
    version = mlflow.register(run.run_id, uri, name)
    prior = str(champ.version) if champ is not None else ""
    mlflow.tag_version(
        name,
        version,
        {
            VERSION_KEY_TAG: plan.key,
            "trademl.snapshot": plan.year,
            "trademl.mode": plan.mode,
            "trademl.window_start": plan.span[0],
            "trademl.window_end": plan.span[1],
            "trademl.prior_version": prior,
            "trademl.promoted": result.decision.promote,
            "trademl.forecaster_versions": ",".join(f"{k}:{v}" for k, v in plan.snapshots.items()),
            SYMBOLS_TAG: ",".join(panel.symbols),
            "dagster.run_id": context.run_id,
        },
    )
    decision = result.decision
    if decision.promote:
        mlflow.promote(name, version, decision.reasons())
    else:
        mlflow.refuse(name, version, decision.reasons())
    context.log.info(f"{name} {plan.year} {plan.mode}: v{version}, {decision.summary()}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "cached": False,
            "version_key": plan.key,
            "mode": plan.mode,
            "promoted": decision.promote,
            "verdict": decision.summary(),
            "window": f"{plan.span[0]}…{plan.span[1]}",
            "symbols_used": ", ".join(panel.symbols),
            "onnx": ONNX_FILE,
            "held_out_equity": png_metadata(png),
            **{k: dg.MetadataValue.float(v) for k, v in result.metrics.items()},
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(run.run_id)),
            "mlflow_model_version": dg.MetadataValue.url(mlflow.version_url(name, version)),
        }
    )


#: name → its asset, e.g. AGENT_ASSETS["ppo_lstm"] is `ppo_lstm_agent`.
AGENT_ASSETS = {name: agent_asset(name) for name in AGENTS}
