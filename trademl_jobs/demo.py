"""`make demo`: the whole pipeline on the configured market for the latest session.

Runs in the persistent Dagster instance under $TRADEML_HOME/dagster, so `make dev` shows the
same runs afterwards: bars, QC, features and labels of the training window and the served
book over it; every alpha sleeve trained as of the latest session (CPCV LightGBM/CatBoost and
the linear sleeve, the forecasters on their OOS signals) and judged by its gate; the stacker
over the sleeves that passed; the router serving the session (stacker, fallback weights or
the fit-free feature); the sizing policy trained on the book's history and judged sized vs
unsized; shadow books for every challenger; the report, orders and the blotter — and a
summary saying what was promoted, what was refused and why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import Any

import dagster as dg

from trademl.config import load_settings
from trademl_jobs.instance import ensure_dagster_home

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # we explain failures


def _run(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[str], assets: list[str]
) -> dg.ExecuteInProcessResult:
    """One run of `assets` over `keys` (a single-run range); a failure stops the demo."""
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
    t0 = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        raise_on_error=False,
        run_config=QUIET,
        asset_selection=[dg.AssetKey(a) for a in assets],
    )
    took = time.perf_counter() - t0
    what = ", ".join(assets) if len(assets) <= 4 else f"{', '.join(assets[:3])} +{len(assets) - 3}"
    print(f"  {what}: {keys[0]}…{keys[-1]} ({len(keys)} sessions) in {took:.1f}s", flush=True)
    if not result.success:
        failed = [_why(e) for e in result.all_events if e.is_failure]
        checks = [
            e.description
            for e in result.get_asset_check_evaluations()
            if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
        ]
        why = checks + failed[-2:] or ["see the Dagster UI"]
        raise SystemExit("demo run failed: " + "\n  ".join(str(w) for w in why))
    return result


def _why(event: dg.DagsterEvent) -> str:
    """A failure in one line: the step and the error that stopped it (its cause's text)."""
    if event.event_type_value != "STEP_FAILURE" or not event.step_failure_data.error:
        return str(event.message)
    error = event.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return f"{event.step_key}: {error.message.strip()}"


def _as_of(requested: dt.date | None, settings: Any, keys: list[str], warmup: int) -> str:
    """The partition key of the session the demo runs as of (see `resolve_as_of`)."""
    from trademl.data.calendar import get_calendar
    from trademl.data.sources import last_session, open_source, resolve_as_of

    cal = get_calendar(settings.calendar.exchange, settings.data.start)
    data_last = last_session(open_source(settings.data, cal), cal)
    latest_key = dt.date.fromisoformat(keys[-1])
    first = dt.date.fromisoformat(keys[min(warmup, len(keys) - 1)])
    as_of = resolve_as_of(requested, min(data_last, latest_key), cal, first)
    return as_of.isoformat()


def _history(asked: int, settings: Any, n_keys: int, train: int, warmup: int) -> int:
    """Sessions of features/labels the CPCV sleeves train on: the training window, or with
    `train_sessions: all` every session after the features' warm-up and the forecasters'
    own training window (so their signals stay out of sample), up to the cap."""
    if settings.train_all:
        usable = n_keys - warmup - settings.forecasts.train_sessions
        if usable < 60:
            raise SystemExit(
                f"demo: the data holds {n_keys} sessions up to the as-of session; training on "
                f"all of it needs at least {warmup + settings.forecasts.train_sessions + 60} "
                f"({warmup} of feature warm-up, {settings.forecasts.train_sessions} for the "
                "forecasters, 60 to train on): add history or set equities.train_sessions"
            )
        return max(min(asked, n_keys), min(train, usable))
    return max(1, min(max(asked, train), n_keys))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--history", type=int, default=60, help="sessions of features/labels (≥ train window)"
    )
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=os.environ.get("TRADEML_AS_OF") or None,
        help="the session to run as of (YYYY-MM-DD; env TRADEML_AS_OF); default: the latest "
        "session the data has (files) or the latest completed session (synthetic)",
    )
    args = parser.parse_args(argv)

    settings = load_settings()
    dagster_home = ensure_dagster_home(settings)
    from trademl_assets.partitions import (
        BACKTEST_WINDOW,
        FEATURE_WINDOW,
        POLICY_WINDOW,
        SESSIONS,
        TRAIN_WINDOW,
    )
    from trademl_assets.registry import ALPHA, SIZING, STACKER
    from trademl_jobs.definitions import defs
    from trademl_jobs.summary import pipeline_summary

    try:
        as_of = _as_of(args.as_of, settings, SESSIONS.get_partition_keys(), FEATURE_WINDOW)
    except ValueError as exc:
        raise SystemExit(f"demo: {exc}") from exc
    all_keys = SESSIONS.get_partition_keys()
    keys = all_keys[: all_keys.index(as_of) + 1]  # nothing after the as-of session
    history = _history(args.history, settings, len(keys), TRAIN_WINDOW, FEATURE_WINDOW)
    latest = keys[-1]
    window = keys[-history:]
    # the forecasters' OOS signals need their own training window of features before the
    # CPCV window, so that every OOS forecast the stacker reads is out of sample
    extended = keys[-min(len(keys), history + settings.forecasts.train_sessions) :]
    # the served book's history: what the backtest replays and the sizing policy learns from
    served = keys[-min(history, max(BACKTEST_WINDOW, POLICY_WINDOW)) :]
    past = "" if latest == all_keys[-1] else " (a past session: its orders are halted, never sent)"
    print(f"TradeML demo — {settings.data.source} market, as of session {latest}{past}")
    print(
        f"Training on {len(window)} sessions, {window[0]} … {latest} "
        f"(equities.train_sessions: {settings.equities.train_sessions})"
    )
    daily = defs.resolve_job_def("daily")
    scores = [sp.scores_key for sp in ALPHA]
    book = ["alpha_scores", "target_weights", "sized_weights"]
    with dg.DagsterInstance.get() as instance:
        _run(daily, instance, keys[-(FEATURE_WINDOW + len(extended) - 1) :], ["bars"])
        _run(daily, instance, extended, ["bars", "features"])
        first = _run(daily, instance, window, ["bars", "labels"])
        _run(daily, instance, served, [*scores, *book])
        alpha = defs.resolve_job_def("alpha_train")
        _run(alpha, instance, window, ["oos_signals"])
        sleeves = [k for sp in ALPHA for k in (sp.model_key, sp.oof_key, sp.champion_key)]
        stacker = [STACKER.model_key, STACKER.champion_key] if STACKER else []
        trained = _run(alpha, instance, [latest], sleeves)
        stacked = _run(alpha, instance, [latest], stacker) if stacker else None
        _run(daily, instance, [latest], [*scores, *book])
        sizing = defs.resolve_job_def("sizing_train")
        _run(daily, instance, served, ["rl_trajectories"])  # the offline RL log of the book
        sized = _run(
            sizing,
            instance,
            [latest],
            [k for sp in SIZING for k in (sp.model_key, sp.champion_key)],
        )
        _run(
            daily,
            instance,
            [latest],
            [
                "sized_weights",
                "shadow_weights",
                "shadow_books",
                "backtest",
                *(["theses"] if any(sp.name == "thesis" for sp in ALPHA) else []),
            ],
        )
        traded = _run(defs.resolve_job_def("trade"), instance, [latest], ["daily_report", "orders"])
        _run(defs.resolve_job_def("reconciliation"), instance, [latest], ["blotter"])

    from resources.lake import Lake

    summary = pipeline_summary(
        Lake(settings.lake_root),
        settings,
        latest,
        window,
        runs={
            "history": first,
            "alpha": trained,
            "stacker": stacked,
            "sizing": sized,
            "trade": traded,
        },
    )
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    report = settings.reports_dir / f"pipeline_{latest}.json"
    report.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2, default=str))
    print("\n" + summary["verdict"])
    rl = summary["sleeves"].get("offline_rl", {})
    if rl.get("version") is not None:
        print(
            f"Offline RL sizing v{rl['version']}: doubly robust value {rl.get('ope_dr')} "
            f"[{rl.get('ope_dr_lo')}, {rl.get('ope_dr_hi')}] vs the traded book's "
            f"{rl.get('ope_behaviour')} (bps per episode) — "
            f"{'promoted' if rl['promoted'] else 'refused'}: {rl['why']}"
        )
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
