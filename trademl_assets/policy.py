"""Policy sleeve: the GRPO sizing policy trained on the rotten apples, and its daily actions."""

import dataclasses
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.provenance import data_fingerprint
from trademl_assets.metadata import frame_metadata, markdown_table
from trademl_assets.partitions import POLICY_LOOKBACK, SESSIONS, SINGLE_RUN, sessions_of
from trademl_assets.sleeves import (
    ModelCache,
    champion_as_of,
    champion_asset,
    champion_history,
    gate_result,
    register_judged,
)

MODEL_NAME = "grpo_policy"
GATE = "policy_gate"
SCORES = ("sharpe_policy", "sharpe_sign", "sharpe_vol_target", "sharpe_long_1", "mdd_policy")


def grpo_params(s: Settings):
    """GRPO hyperparameters of the settings in force (CUDA on the gpu deployment)."""
    from trademl.models.policy import GRPOParams

    p = s.policy
    return GRPOParams(
        group_size=p.group_size,
        lr=p.lr,
        epochs=p.epochs,
        batch_size=p.batch_size,
        clip_eps=p.clip_eps,
        kl_beta=p.kl_beta,
        entropy_coef=p.entropy_coef,
        cost_bps=p.cost_bps,
        risk_aversion=p.risk_aversion,
        hidden=tuple(p.hidden),
        patience=p.patience,
        seed=p.seed,
        device="cuda" if s.env == "gpu" else "cpu",
        num_threads=1,
    )


def split_by_time(frame: pl.DataFrame, test_frac: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test): the latest `test_frac` of sessions are the out-of-sample test."""
    sessions = frame.get_column("session").unique().sort()
    n_test = max(1, math.ceil(test_frac * sessions.len()))
    first_test = sessions[sessions.len() - n_test]
    return (
        frame.filter(pl.col("session") < first_test),
        frame.filter(pl.col("session") >= first_test),
    )


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="policy",
    io_manager_key="lake",
    pool="gpu",
    ins={"oos_signals": dg.AssetIn(partition_mapping=POLICY_LOOKBACK, metadata={MISSING_OK: True})},
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset="grpo_policy",
            blocking=True,
            description="Out-of-sample Sharpe of the policy's positions beats constant sizing "
            "(sign of the forecast) by policy.min_sharpe_margin and is ≥ policy.min_sharpe; NaN "
            "fails closed.",
        )
    ],
    metadata={"partition_column": "date"},
    kinds={"pytorch", "onnx", "mlflow"},
)
def grpo_policy(
    context: dg.AssetExecutionContext,
    oos_signals: pl.LazyFrame,
    settings: SettingsResource,
    mlflow: MlflowResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The sizing policy as of each session: GRPO on the realized OOS signals known by then
    (early stopping on a later validation split), judged on the latest sessions it never saw
    against constant, sign and vol-targeted sizing; ONNX registered as `grpo_policy`."""
    from trademl.models.policy import GRPOSizer, evaluate_policy, save_policy, to_onnx

    s = settings.get()
    signals = oos_signals.collect()
    rows, failures = [], []
    for as_of in sessions_of(context.partition_keys):
        frame = (
            signals.filter(pl.col("date") <= as_of)
            .drop("date")
            .rename({"decision_date": "session"})
            .sort("session", "symbol")
        )
        train, test = split_by_time(frame, s.policy.test_frac)
        model = GRPOSizer(params=grpo_params(s)).fit(train)
        ev = evaluate_policy(model, test)
        by = {r["strategy"]: r for r in ev.iter_rows(named=True)}
        scores = {
            "sharpe_policy": by["policy"]["sharpe"],
            "sharpe_sign": by["sign"]["sharpe"],
            "sharpe_vol_target": by["vol_target"]["sharpe"],
            "sharpe_long_1": by["long_1"]["sharpe"],
            "mdd_policy": by["policy"]["max_drawdown"],
        }
        bar = max(scores["sharpe_sign"] + s.policy.min_sharpe_margin, s.policy.min_sharpe)
        passed = math.isfinite(scores["sharpe_policy"]) and scores["sharpe_policy"] >= bar
        with mlflow.start_run_for(
            context, data_fingerprint=data_fingerprint(frame.select("session", "symbol", "y"))
        ) as run:
            run.log_params({"as_of": as_of, **dataclasses.asdict(model.params)})
            run.log_metrics(
                {**scores, "best_epoch": model.best_epoch_, "val_sharpe": model.best_val_sharpe_}
            )
            run.log_dict({"evaluation": ev.to_dicts()}, "evaluation.json")
            uri = run.log_onnx_model(to_onnx(model), name="model")
            with tempfile.TemporaryDirectory() as tmp:
                run.log_artifact(save_policy(model, Path(tmp) / "policy"), "policy")
        reason = (
            f"OOS Sharpe {scores['sharpe_policy']:.3g} vs bar {bar:.3g} (constant sizing "
            f"{scores['sharpe_sign']:.3g} + {s.policy.min_sharpe_margin:g}, at least "
            f"{s.policy.min_sharpe:g})"
        )
        row = register_judged(
            mlflow,
            name=MODEL_NAME,
            run_id=run.run_id,
            model_uri=uri,
            as_of=as_of,
            passed=passed,
            check="sharpe",
            reason=reason,
            failures=failures,
        )
        rows.append(
            {
                **row,
                "train_sessions": train.get_column("session").n_unique(),
                "test_sessions": test.get_column("session").n_unique(),
                **{k: float(v) for k, v in scores.items()},
            }
        )
    out = pl.DataFrame(rows)
    yield dg.Output(
        out,
        metadata={
            "version": rows[-1]["version"],
            **{k: dg.MetadataValue.float(rows[-1][k]) for k in SCORES},
            "evaluation": dg.MetadataValue.md(markdown_table(ev)),
        },
    )
    yield gate_result(GATE, failures, "beats constant sizing out of sample")


grpo_policy_champion = champion_asset(
    model_asset="grpo_policy",
    registered=MODEL_NAME,
    group="policy",
    reason_keys=("sharpe_policy", "sharpe_sign"),
)


def _onnx_policy(directory: Path):
    from trademl.models.policy.onnx_policy import OnnxPolicy

    return OnnxPolicy(directory / "model.onnx")


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="policy",
    io_manager_key="lake",
    metadata={"partition_column": "date"},
    kinds={"onnx"},
)
def policy_actions(
    context: dg.AssetExecutionContext,
    forecast_scores: pl.DataFrame,
    lake_store: LakeResource,
    mlflow: MlflowResource,
) -> dg.Output[pl.DataFrame]:
    """Each session's position per symbol: the champion policy as of that session (ONNX)
    sizing the live forecast, position = size · sign(y_hat)."""
    history = champion_history(lake_store.lake, "grpo_policy_champion")
    parts, missing = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelCache(mlflow, _onnx_policy, tmp)
        for session in sessions_of(context.partition_keys):
            row = champion_as_of(history, session)
            day = forecast_scores.filter(pl.col("date") == session).drop_nulls(
                ["y_hat", "vol", "trend"]
            )
            if row is None or day.height == 0:
                missing += 1
                continue
            policy = cache.get(row)
            parts.append(
                day.select("date", "symbol", "y_hat", "vol", "trend").with_columns(
                    pl.Series("size", policy.act(day)),
                    pl.Series("position", policy.positions(day)),
                    pl.lit(row["version"]).alias("policy_version"),
                )
            )
    schema = {
        "date": pl.Date,
        "symbol": pl.String,
        "y_hat": pl.Float64,
        "vol": pl.Float64,
        "trend": pl.Float64,
        "size": pl.Float64,
        "position": pl.Float64,
        "policy_version": pl.String,
    }
    out = pl.concat(parts).cast(schema) if parts else pl.DataFrame(schema=schema)
    if missing:
        context.log.warning(f"{missing} sessions have no champion policy or no forecasts")
    meta = frame_metadata(out, len(context.partition_keys))
    meta["sessions_without_actions"] = dg.MetadataValue.int(missing)
    return dg.Output(out, metadata=meta)
