"""The one sleeve interface: train as of a session → gate → register `challenger` →
`<sleeve>_champion` → score each session with the champion as of that session.

A sleeve is a `SleeveSpec` (its library's train/gate/load functions and its inputs) and one
entry in `trademl_assets.registry`; these factories turn it into assets:

- `model_assets`: `<model_asset>` (one row per as-of session: version, verdict, metrics) and,
  for alpha sleeves, `<sleeve>_oof` (the out-of-fold predictions with their split layout);
  a non-blocking `promotion_gate` check: a refusal is a verdict, the run still succeeds.
- `champion_asset` (`trademl_assets.champion`): `<sleeve>_champion`, the promotion history;
  it moves `champion` for the rows whose gate passed and is skipped (no materialization)
  when none did, or rolls it back to `previous_champion` (`trademl_jobs.rollback`).
- `scores_asset`: `<sleeve>_scores`, the champion's scores as of each session (role
  ``champion``) and the challenger's, when it is another version (role ``challenger``, for
  the shadow books).
"""

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import polars as pl

from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.models.gate import Decision
from trademl.models.sleeve import NotTrainable, Trained
from trademl.provenance import data_fingerprint
from trademl_assets import probation
from trademl_assets.history import (
    ModelCache,
    challenger_as_of,
    champion_as_of,
    champion_history,
    model_rows,
)
from trademl_assets.k8s import gpu_step_tags
from trademl_assets.metadata import figure_metadata, frame_metadata
from trademl_assets.partitions import SESSIONS, SINGLE_RUN, sessions_of
from trademl_assets.sleeve_eval import evaluate_trained
from trademl_assets.sleeve_steps import (
    GATE,
    as_float,
    as_json,
    champion_metrics,
    gate_result,
    input_prints,
    log_trained,
    model_row_schema,
    training_key,
)

ROLES = ("champion", "challenger")
SCORE_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "score": pl.Float64,
    "model_version": pl.String,
    "role": pl.String,
}

TrainFn = Callable[[Mapping[str, pl.LazyFrame], dt.date, Settings, Callable[[str], None]], Trained]
DecideFn = Callable[[dict[str, Any], dict[str, Any] | None, Settings], Decision]
ScoreFn = Callable[[Any, Mapping[str, Any], dt.date, Settings], pl.DataFrame]


@dataclass(frozen=True)
class SleeveSpec:
    """Everything the platform needs to know about one sleeve.

    `name` is the registered MLflow model and the key configs use (stacker.sleeves,
    router.fallback_weights); `train` and `decide` call the sleeve's library package;
    `load` opens a downloaded model directory for `score`.
    """

    name: str
    kind: Literal["alpha", "stacker", "sizing"]
    group: str
    ins: Mapping[str, dg.AssetIn]
    train: TrainFn
    decide: DecideFn
    gate_description: str
    load: Callable[[Path], Any]
    model_asset: str = ""
    description: str = ""
    row_metrics: tuple[str, ...] = ()
    pool: str | None = None
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"mlflow"}))
    #: Alpha sleeves: the inputs a session's scoring reads and the function that scores it.
    score_ins: Mapping[str, dg.AssetIn] = field(default_factory=dict)
    score: ScoreFn | None = None
    score_kinds: frozenset[str] = field(default_factory=lambda: frozenset({"onnx"}))
    #: Shadow sessions a passing challenger must trade before promotion (0: promote at once).
    min_shadow: Callable[[Settings], int] = lambda s: 0

    @property
    def model_key(self) -> str:
        return self.model_asset or f"{self.name}_model"

    @property
    def champion_key(self) -> str:
        return f"{self.name}_champion"

    @property
    def oof_key(self) -> str:
        return f"{self.name}_oof"

    @property
    def scores_key(self) -> str:
        return f"{self.name}_scores"


def model_assets(spec: SleeveSpec) -> dg.AssetsDefinition:
    """`<model_asset>` (+ `<sleeve>_oof` for alpha sleeves) with the `promotion_gate` check."""
    outs = {
        spec.model_key: dg.AssetOut(
            metadata={"partition_column": "date"},
            description=spec.description,
            kinds=set(spec.kinds),
            group_name=spec.group,
            io_manager_key="lake",
        )
    }
    if spec.kind == "alpha":
        outs[spec.oof_key] = dg.AssetOut(
            metadata={"partition_column": "as_of"},
            description=f"Out-of-fold predictions of {spec.name} as of each session, with the "
            "split layout (JSON) that produced them: what the stacker learns from.",
            group_name=spec.group,
            io_manager_key="lake",
        )

    @dg.multi_asset(
        name=f"{spec.name}_train",
        outs=outs,
        ins=dict(spec.ins),
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        pool=spec.pool,
        # on Kubernetes a `gpu` step's pod asks for a GPU on a GPU node (configs/k8s.yaml)
        op_tags=gpu_step_tags() if spec.pool == "gpu" else None,
        can_subset=False,
        required_resource_keys={"settings", "mlflow", "lake_store"},
        check_specs=[
            dg.AssetCheckSpec(GATE, asset=spec.model_key, description=spec.gate_description)
        ],
    )
    def _train(context: dg.AssetExecutionContext, **inputs: Any) -> Iterator[Any]:
        yield from _run_training(context, spec, inputs)

    return _train


def _run_training(
    context: dg.AssetExecutionContext, spec: SleeveSpec, inputs: Mapping[str, Any]
) -> Iterator[Any]:
    settings: SettingsResource = context.resources.settings
    mlflow: MlflowResource = context.resources.mlflow
    lake = context.resources.lake_store.lake
    s = settings.get()
    history = champion_history(lake, spec.champion_key)
    passed: list[tuple[dt.date, dict]] = []
    rows, oofs, verdicts, figures = [], [], [], {}
    needed = spec.min_shadow(s)
    prints = input_prints(inputs)
    previous = model_rows(lake, spec.model_key)
    cached: list[str] = []
    for as_of in sessions_of(context.partition_keys):
        if needed:  # a held challenger with its shadow record is promoted first
            registered = pl.concat(
                [
                    model_rows(lake, spec.model_key),
                    pl.DataFrame(rows, schema=model_row_schema(spec.row_metrics)),
                ],
                how="diagonal_relaxed",
            ).filter(pl.col("version").is_not_null())
            proven, why = probation.review(lake, spec.name, registered, history, as_of, needed)
            context.log.info(f"{spec.name} shadow review as of {as_of}: {why}")
            if proven is not None:
                rows.append(proven)
                metrics = mlflow.client().get_run(proven["run_id"]).data.metrics
                passed.append((as_of, dict(metrics)))
        key = training_key(spec.name, as_of, s, prints)
        same = _same_training(previous, as_of, key)
        if same is not None:  # identical inputs, settings and code: the registered version
            context.log.info(f"{spec.name} as of {as_of}: v{same['version']} (cached)")
            cached.append(str(same["version"]))
            rows.append(dict(same))  # the same row: same version, verdict and metrics
            if same["passed_gate"]:
                metrics = mlflow.client().get_run(same["run_id"]).data.metrics
                passed.append((as_of, dict(metrics)))
            verdicts.append((as_of, f"{same['verdict']} (cached)", {}))
            if spec.kind == "alpha" and str(as_of) in lake.partitions(spec.oof_key):
                oofs.append(lake.scan(spec.oof_key, [str(as_of)]).collect())
            continue
        try:
            trained = spec.train(inputs, as_of, s, context.log.info)
        except NotTrainable as why:
            context.log.warning(f"{spec.name} as of {as_of}: {why}")
            rows.append(
                {
                    "date": as_of,
                    "model": spec.name,
                    "passed_gate": False,
                    "held": False,
                    "event": "not_trained",
                    "n_trials": 0,
                    "verdict": f"not trained: {why}",
                }
            )
            verdicts.append((as_of, f"not trained: {why}", {}))
            continue
        evaluate_trained(
            trained,
            lake,
            s,
            spec.name,
            spec.oof_key if spec.kind == "alpha" else None,
            champion_as_of(history, as_of),
            as_of,
        )
        champ = champion_metrics(mlflow, champion_as_of(history, as_of), passed)
        decision = spec.decide(trained.metrics, champ, s)
        with (
            mlflow.start_run_for(
                context,
                data_fingerprint=data_fingerprint(trained.fingerprint),
                run_name=f"{spec.name}@{as_of}",
                tags={"trademl.sleeve": spec.name, "trademl.as_of": str(as_of)},
            ) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            uri = log_trained(run, trained, as_of, Path(tmp))
            held = decision.promote and needed > 0
            gate = "held" if held else "passed" if decision.promote else "refused"
            run.set_tags({"trademl.gate": gate})
        version = mlflow.register(run.run_id, uri, spec.name)
        verdict = decision.summary()
        if held:
            verdict += f"; held until it has traded {needed} sessions in the shadow"
            mlflow.refuse(spec.name, version, {"shadow_record": f"needs {needed} sessions"})
        elif decision.promote:
            passed.append((as_of, trained.metrics))
        else:
            mlflow.refuse(spec.name, version, decision.reasons())
        figures = trained.figures
        verdicts.append((as_of, verdict, {c.name: c for c in decision.failed()}))
        rows.append(
            {
                "date": as_of,
                "model": spec.name,
                "version": version,
                "run_id": run.run_id,
                "model_uri": uri,
                "passed_gate": decision.promote and not held,
                "held": held,
                "event": "trained",
                "n_trials": trained.n_trials,
                "verdict": verdict,
                "info": as_json(trained.info),
                "training_key": key,
                **{k: as_float(trained.metrics.get(k)) for k in spec.row_metrics},
            }
        )
        if trained.oof is not None and trained.layout is not None:
            oofs.append(
                trained.oof.with_columns(
                    pl.lit(as_of).alias("as_of"),
                    pl.lit(version).alias("version"),
                    pl.lit(decision.promote and not held).alias("passed_gate"),
                    pl.lit(trained.n_trials).alias("n_trials"),
                    pl.lit(as_float(trained.metrics.get("pbo"))).alias("sleeve_pbo"),
                    pl.lit(as_float(trained.metrics.get("dsr"))).alias("sleeve_dsr"),
                    pl.lit(trained.layout.to_json()).alias("layout"),
                )
            )
    out = pl.DataFrame(rows, schema=model_row_schema(spec.row_metrics))
    last = out.row(-1, named=True)
    meta: dict[str, Any] = {
        "version": str(last["version"]),
        "passed_gate": bool(last["passed_gate"]),
        "verdict": str(last["verdict"]),
        # re-materialized with identical inputs, settings and code: no new training or version
        "cached": bool(cached),
        **{k: dg.MetadataValue.float(as_float(last[k])) for k in spec.row_metrics},
    }
    if last["run_id"]:  # both ways: the asset links to its MLflow run and registered version
        meta["mlflow_run"] = dg.MetadataValue.url(mlflow.run_url(str(last["run_id"])))
        meta["mlflow_model_version"] = dg.MetadataValue.url(
            mlflow.version_url(spec.name, last["version"])
        )
    shown = [k for k in figures if not k.startswith("evaluation/")][:2]
    shown += [k for k in figures if k.startswith("evaluation/")]
    meta |= {
        name.split("/")[-1].removesuffix(".png"): figure_metadata(figures[name]) for name in shown
    }
    if last["run_id"]:
        meta |= {
            k: dg.MetadataValue.float(float(v))
            for k, v in mlflow.client().get_run(str(last["run_id"])).data.metrics.items()
            if k.startswith("eval_")
        }
    yield dg.Output(out, output_name=spec.model_key, metadata=meta)
    if spec.kind == "alpha":
        frame = (
            pl.concat(oofs, how="diagonal_relaxed")
            if oofs
            else pl.DataFrame(schema={"as_of": pl.Date, "date": pl.Date, "symbol": pl.String})
        )
        yield dg.Output(
            frame.select("as_of", pl.exclude("as_of")),
            output_name=spec.oof_key,
            metadata=frame_metadata(frame, len(context.partition_keys)),
        )
    yield gate_result(spec.model_key, verdicts)


def _same_training(previous: pl.DataFrame, as_of: dt.date, key: str | None) -> dict | None:
    """The registered snapshot of `as_of` trained from the same `key`, if any."""
    if key is None or "training_key" not in previous.columns:
        return None
    hit = previous.filter(
        (pl.col("date") == as_of)
        & (pl.col("training_key") == key)
        & pl.col("version").is_not_null()
    )
    return hit.row(-1, named=True) if hit.height else None


def scores_asset(spec: SleeveSpec) -> dg.AssetsDefinition:
    """`<sleeve>_scores`: per session, the champion's scores as of that session (never a
    later one) and, when the newest registered version as of it is another one, that
    challenger's too (role ``challenger``); no champion yet → no champion rows."""
    score = spec.score
    if score is None:
        raise ValueError(f"sleeve {spec.name} has no score function: it cannot be scored")

    @dg.asset(
        name=spec.scores_key,
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        group_name=spec.group,
        io_manager_key="lake",
        ins=dict(spec.score_ins),
        metadata={"partition_column": "date"},
        kinds=set(spec.score_kinds),
        required_resource_keys={"settings", "mlflow", "lake_store"},
        description=f"Scores of `{spec.name}`'s champion (and challenger) as of each session.",
    )
    def _scores(context: dg.AssetExecutionContext, **inputs: Any) -> dg.Output[pl.DataFrame]:
        s = context.resources.settings.get()
        lake = context.resources.lake_store.lake
        history = champion_history(lake, spec.champion_key)
        registered = model_rows(lake, spec.model_key)
        parts, used, missing = [], {}, 0
        with tempfile.TemporaryDirectory() as tmp:
            cache = ModelCache(context.resources.mlflow, spec.load, tmp)
            for session in sessions_of(context.partition_keys):
                champ = champion_as_of(history, session)
                if champ is None:
                    missing += 1
                for role, row in zip(
                    ROLES, (champ, challenger_as_of(registered, history, session)), strict=True
                ):
                    if row is None:
                        continue
                    day = score(cache.get(row), inputs, session, s)
                    parts.append(
                        day.select("symbol", "score").with_columns(
                            pl.lit(session).alias("date"),
                            pl.lit(str(row["version"])).alias("model_version"),
                            pl.lit(role).alias("role"),
                        )
                    )
                    used[f"{session} {role}"] = str(row["version"])
        out = (
            pl.concat(parts).select(list(SCORE_SCHEMA)).cast(SCORE_SCHEMA)
            if parts
            else pl.DataFrame(schema=SCORE_SCHEMA)
        )
        if missing:
            context.log.warning(f"{missing} sessions have no {spec.name} champion: no scores")
        meta = frame_metadata(out, len(context.partition_keys))
        meta["sessions_without_champion"] = dg.MetadataValue.int(missing)
        meta["model_versions"] = dg.MetadataValue.json(sorted(set(used.values())))
        return dg.Output(out, metadata=meta)

    return _scores
