"""`make demo`: materialize the pipeline on the configured market for the latest session.

Runs in the persistent Dagster instance under $TRADEML_HOME/dagster, so `make dev`
shows the same runs afterwards: the bars of the lookback window; bars, QC, features and
labels of the training window; the equities alpha trained (CPCV + HPO) and promoted if
it passes its gate (or why not); and the champion's scores for the latest session.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import dagster as dg
import polars as pl

from trademl.config import load_settings
from trademl_jobs.instance import ensure_dagster_home

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


GATES = {"promotion_gate", "forecaster_gate", "policy_gate"}  # a refusal is an answer
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # we explain failures


def _run(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    keys: list[str],
    *,
    gate_may_fail: bool = False,
    **kw,
) -> dg.ExecuteInProcessResult:
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
    t0 = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        raise_on_error=False,
        run_config=QUIET,
        **kw,
    )
    took = time.perf_counter() - t0
    what = ", ".join(k.to_user_string() for k in kw.get("asset_selection", [])) or job.name
    print(f"  {what}: {keys[0]}…{keys[-1]} ({len(keys)} sessions) in {took:.1f}s", flush=True)
    gate_only = all(
        e.check_name in GATES for e in result.get_asset_check_evaluations() if not e.passed
    )
    if not result.success and not (gate_may_fail and gate_only):
        checks = [e.description for e in result.get_asset_check_evaluations() if not e.passed]
        failed = [e.message for e in result.all_events if e.is_failure]
        why = checks + failed[-1:] or ["see the Dagster UI"]
        raise SystemExit("demo run failed: " + "\n  ".join(str(w) for w in why))
    return result


def _forecasts_summary(
    lake, latest: str, keys: list[str], trained: dg.ExecuteInProcessResult
) -> dict:
    """The rotten apples, the forecaster and the policy: promoted or why not, and today's
    positions."""
    gates = {e.check_name: e for e in trained.get_asset_check_evaluations()}
    signals = lake.scan("oos_signals", keys).select(pl.len()).collect().item()
    fc = lake.scan("oos_forecaster", [latest]).collect().row(0, named=True)
    pol = lake.scan("grpo_policy", [latest]).collect().row(0, named=True)
    actions = lake.scan("policy_actions", [latest]).collect()

    def verdict(name: str) -> dict:
        g = gates.get(name)
        return {"promoted": bool(g and g.passed), "why": g.description if g else "not evaluated"}

    return {
        "oos_signals_rows": signals,
        "oos_forecaster": {
            "version": fc["version"],
            "oos_rank_ic": fc["rank_ic_mean"],
            "hit_rate": fc["hit_rate"],
            **verdict("forecaster_gate"),
        },
        "grpo_policy": {
            "version": pol["version"],
            "oos_sharpe": pol["sharpe_policy"],
            "oos_sharpe_constant": pol["sharpe_sign"],
            "oos_sharpe_vol_target": pol["sharpe_vol_target"],
            **verdict("policy_gate"),
        },
        "policy_actions_rows": actions.height,
        "mean_size": float(actions.get_column("size").mean()) if actions.height else None,
    }


def _trading_summary(lake, latest: str, traded: dg.ExecuteInProcessResult) -> dict:
    """What the portfolio, report, orders and blotter of the latest session came to."""
    weights = lake.scan("target_weights", [latest]).collect()
    bt = lake.scan("backtest", [latest]).collect()
    report = lake.scan("daily_report", [latest]).collect().row(0, named=True)
    orders = lake.scan("orders", [latest]).collect()
    blotter = lake.scan("blotter", [latest]).collect()
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in traded.get_asset_materialization_events()
    }
    halts = meta.get("orders", {}).get("halt_reasons")
    return {
        "portfolio": {
            "signal": sorted(set(weights.get_column("source").to_list())),
            "longs": int((weights.get_column("weight") > 0).sum()),
            "shorts": int((weights.get_column("weight") < 0).sum()),
            "gross": float(weights.get_column("weight").abs().sum()),
        },
        "backtest": {
            "sessions": bt.height,
            "net_return": float(bt.get_column("equity")[-1] - 1.0) if bt.height else None,
            "benchmark_return": float(bt.get_column("benchmark_equity")[-1] - 1.0)
            if bt.height
            else None,
        },
        "report": report["report_md"],
        "orders": {
            "count": orders.height,
            "status": dict(orders.group_by("status").len().iter_rows()),
            "halted_because": halts.value if halts is not None else [],
        },
        "blotter_rows": blotter.height,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--history", type=int, default=60, help="sessions of features/labels (≥ train window)"
    )
    args = parser.parse_args(argv)

    settings = load_settings()
    dagster_home = ensure_dagster_home(settings)
    from trademl_assets.partitions import FEATURE_WINDOW, SESSIONS, TRAIN_WINDOW
    from trademl_jobs.definitions import defs

    keys = SESSIONS.get_partition_keys()
    history = max(1, min(max(args.history, TRAIN_WINDOW), len(keys)))
    latest = keys[-1]
    print(f"TradeML demo — {settings.data.source} market, latest completed session {latest}")
    daily = defs.resolve_job_def("daily")
    train = defs.resolve_job_def("equities_train")
    with dg.DagsterInstance.get() as instance:
        _run(
            daily,
            instance,
            keys[-(FEATURE_WINDOW + history - 1) :],
            asset_selection=[dg.AssetKey("bars")],
        )
        history_assets = [
            dg.AssetKey(k)
            for k in ("bars", "features", "labels", "equities_xs_scores", "target_weights")
        ]
        result = _run(daily, instance, keys[-history:], asset_selection=history_assets)
        trained = _run(train, instance, [latest], gate_may_fail=True)
        scored = _run(
            daily,
            instance,
            [latest],
            asset_selection=[
                dg.AssetKey(k) for k in ("equities_xs_scores", "target_weights", "backtest")
            ],
        )
        fc_train = defs.resolve_job_def("forecasts_train")
        history_keys = keys[-history:]
        _run(fc_train, instance, history_keys, asset_selection=[dg.AssetKey("oos_signals")])
        forecasts = _run(
            fc_train,
            instance,
            [latest],
            gate_may_fail=True,
            asset_selection=[
                dg.AssetKey(k)
                for k in (
                    "oos_forecaster",
                    "oos_forecaster_champion",
                    "grpo_policy",
                    "grpo_policy_champion",
                )
            ],
        )
        _run(
            daily,
            instance,
            [latest],
            asset_selection=[dg.AssetKey("forecast_scores"), dg.AssetKey("policy_actions")],
        )
        traded = _run(defs.resolve_job_def("trade"), instance, [latest])
        _run(defs.resolve_job_def("reconciliation"), instance, [latest])
    qc = {e.check_name: e for e in result.get_asset_check_evaluations()}.get("quality")
    gate = {e.check_name: e for e in trained.get_asset_check_evaluations()}.get("promotion_gate")

    from resources.lake import Lake

    lake = Lake(settings.lake_root)
    feats = lake.scan("features", [latest]).collect()
    labs = lake.scan("labels", keys[-history:]).collect()
    model = lake.scan("equities_xs_model", [latest]).collect().row(0, named=True)
    scores = lake.scan("equities_xs_scores", [latest]).collect()
    summary = {
        "session": latest,
        "bars_rows": lake.scan("bars", [latest]).select(pl.len()).collect().item(),
        "feature_rows": feats.height,
        "features": len(feats.columns) - 2,
        "label_rows": labs.height,
        "qc": qc.metadata["status"].value if qc else "not run",
        "qc_detail": qc.description if qc else "",
        "equities_xs": {
            "version": model["version"],
            "oos_rank_ic": model["oos_rank_ic"],
            "path_sharpe_median": model["path_sharpe_median"],
            "dsr": model["dsr"],
            "pbo": model["pbo"],
            "promoted": bool(gate and gate.passed),
            "why": gate.description if gate else "gate not evaluated",
        },
        "scores_rows": scores.height,
        "scored_by": scores.get_column("model_version").unique().to_list() if scores.height else [],
        **_forecasts_summary(lake, latest, history_keys, forecasts),
        **_trading_summary(lake, latest, traded),
    }
    assert scored.success
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    report = settings.reports_dir / f"pipeline_{latest}.json"
    report.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(
        "\nWhere things are:\n"
        f"  lake         {settings.lake_root}\n"
        f"  reports      {settings.reports_dir}   (equities_{latest}.md, .json, plots)\n"
        f"  blotter      {settings.home / 'broker'}   (dry-run ledger and blotters)\n"
        f"  MLflow store {settings.mlflow_tracking_uri}\n"
        f"  Dagster home {dagster_home}   (make dev → http://127.0.0.1:3000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
