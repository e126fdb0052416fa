"""`daily_report`: the session's report a person reads — picks, weights, expected costs, risk,
QC, which path and which model versions served the book, and the shadow books."""

import json
import math
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.backtest import performance_metrics
from trademl.backtest.plots import drawdown_png, equity_png, rolling_ic_png, turnover_png
from trademl.backtest.report import session_report, write_report
from trademl.costs import trade_costs
from trademl.params import cost_model
from trademl.portfolio import forecast_vol
from trademl.provenance import data_fingerprint
from trademl.validation.metrics import sharpe
from trademl_assets.data import qc_for
from trademl_assets.metadata import markdown_table, png_metadata
from trademl_assets.partitions import PER_SESSION, PREVIOUS_SESSION, SESSIONS, sessions_of
from trademl_assets.theses import session_theses, top_theses


def _serving(today: pl.DataFrame) -> dict[str, Any]:
    """The router path, model versions, sizer and trials behind the session's book."""
    if today.height == 0:
        return {}
    row = today.row(0, named=True)
    return {
        "path": row["source"],
        "models": json.loads(row["models"] or "{}"),
        "sizer": row["sizer"],
        "n_trials": int(row["n_trials"] or 1),
    }


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=PER_SESSION,
    group_name="portfolio",
    io_manager_key="lake",
    ins={
        # the previous session's book may not exist (the first report): trades start from flat
        "sized_weights": dg.AssetIn(partition_mapping=PREVIOUS_SESSION, metadata={MISSING_OK: True})
    },
    metadata={"partition_column": "date"},
    kinds={"mlflow"},
)
def daily_report(
    context: dg.AssetExecutionContext,
    sized_weights: pl.LazyFrame,
    backtest: pl.DataFrame,
    shadow_books: pl.DataFrame,
    bars: pl.DataFrame,
    settings: SettingsResource,
    lake_store: LakeResource,
    mlflow: MlflowResource,
) -> dg.Output[pl.DataFrame]:
    """`$TRADEML_HOME/reports/equities_<session>.json` and `.md` with PNG plots: picks,
    weights, expected costs, risk, the serving path and model versions, QC, and champion vs
    challengers; plots also go to MLflow."""
    s = settings.get()
    session = sessions_of([context.partition_key])[0]
    w = sized_weights.collect()
    today = w.filter(pl.col("date") == session)
    if today.height == 0:
        raise dg.Failure(
            description=f"daily_report {session}: sized_weights for {session} are not written; "
            "materialize sized_weights (the daily job) for it first"
        )
    before = w.filter(pl.col("date") < session).select("symbol", pl.col("weight").alias("prev"))
    capital = s.backtest.initial_capital
    px = bars.select("symbol", "close")
    trades = (
        today.join(before, on="symbol", how="full", coalesce=True)
        .join(px, on="symbol", how="left")
        .with_columns(
            ((pl.col("weight").fill_null(0.0) - pl.col("prev").fill_null(0.0)) * capital).alias(
                "notional"
            )
        )
        .filter((pl.col("notional") != 0) & (pl.col("close") > 0))
        .with_columns((pl.col("notional") / pl.col("close")).alias("shares"))
    )
    costs = trade_costs(
        trades.select("symbol", "notional", "shares", "adv", "sigma"), cost_model(s)
    )
    vol = forecast_vol(
        today.select("date", "symbol", "weight"), today.select("date", "symbol", "sigma")
    )
    qc_status, qc_reasons = qc_for(lake_store.lake, context.partition_key)
    bt = backtest.sort("session")
    serving = _serving(today)
    report = session_report(
        session=session,
        weights=today,
        trade_costs=costs,
        backtest_metrics=_summary(bt),
        forecast_vol=float(vol.get_column("vol")[0]) if vol.height else float("nan"),
        model_versions=serving.get("models", {}),
        qc_status=qc_status,
        book_capital=capital,
        qc_reasons=qc_reasons,
        serving=serving,
        shadow_books=shadow_books.drop("date").to_dicts(),
        theses=top_theses(session_theses(lake_store.lake, session), today, s.theses.report_top),
    )
    dates = bt.get_column("session").to_list()
    eq = bt.get_column("equity").to_numpy()
    plots = {
        "equity": equity_png(
            eq, bt.get_column("benchmark_equity").to_numpy(), dates, benchmark_label="market"
        ),
        "drawdown": drawdown_png(eq, dates),
        "rolling_rank_ic": rolling_ic_png(bt.get_column("rank_ic").to_numpy(), dates),
        "turnover": turnover_png(bt.get_column("turnover").to_numpy(), dates),
    }
    paths = write_report(s.reports_dir, report, plots)
    with mlflow.start_run_for(
        context, data_fingerprint=data_fingerprint(today.select("date", "symbol", "weight"))
    ) as run:
        run.log_metrics(
            {f"backtest_{k}": v for k, v in report["backtest"].items() if v is not None}
        )
        for name in ("json", "md", *plots):
            run.log_artifact(paths[name], artifact_path="report")
    out = pl.DataFrame(
        {
            "date": [session],
            "qc_status": [qc_status],
            "path": [serving.get("path")],
            "models": [json.dumps(serving.get("models", {}), sort_keys=True)],
            "sizer": [serving.get("sizer")],
            "longs": [report["positions"]["long"]],
            "shorts": [report["positions"]["short"]],
            "gross": [report["positions"]["gross"]],
            "expected_cost": [report["expected_costs"]["total"]],
            "report_json": [str(paths["json"])],
            "report_md": [str(paths["md"])],
        },
        schema_overrides={"gross": pl.Float64, "expected_cost": pl.Float64},
    )
    return dg.Output(
        out,
        metadata={
            "report": dg.MetadataValue.path(str(paths["md"])),
            "summary": dg.MetadataValue.md(markdown_table(out.drop("report_json", "report_md"))),
            "shadow_books": dg.MetadataValue.md(markdown_table(shadow_books.drop("date"), n=20)),
            **{name: png_metadata(png) for name, png in plots.items()},
        },
    )


def _summary(bt: pl.DataFrame) -> dict[str, float]:
    """Performance metrics of the backtest rows (recomputed from the stored net returns)."""
    m = performance_metrics(
        bt.get_column("net_returns").to_numpy(),
        turnover=bt.get_column("turnover").to_numpy(),
        n_trials=int(bt.get_column("n_trials").max()),
    )
    m["n_trials"] = int(bt.get_column("n_trials").max())
    ic = bt.get_column("rank_ic").drop_nans().drop_nulls()
    m["rank_ic_mean"] = float(ic.mean()) if ic.len() else float("nan")
    m["total_return"] = float(bt.get_column("equity")[-1] - 1.0)
    bench = bt.get_column("benchmark_equity").to_numpy()
    m["benchmark_return"] = float(bench[-1] - 1.0)
    m["benchmark_sharpe"] = sharpe(bench[1:] / bench[:-1] - 1.0) if bench.size > 2 else math.nan
    return m
