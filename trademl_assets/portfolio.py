"""Portfolio stage: target weights from the alpha, the trailing backtest, the daily report."""

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.backtest import BacktestParams, performance_metrics
from trademl.backtest.plots import drawdown_png, equity_png, rolling_ic_png, turnover_png
from trademl.backtest.report import session_report, write_report
from trademl.backtest.trailing import backtest_window, trailing_backtest, trials_behind
from trademl.config import Settings
from trademl.costs import CostModel, trade_costs
from trademl.portfolio import PortfolioParams, forecast_vol
from trademl.portfolio import target_weights as build_weights
from trademl.portfolio.inputs import alpha_scores, risk_from_features
from trademl.provenance import data_fingerprint
from trademl_assets.data import QC_TABLE
from trademl_assets.metadata import frame_metadata, markdown_table, png_metadata
from trademl_assets.partitions import (
    BACKTEST_LOOKBACK,
    PER_SESSION,
    PREVIOUS_SESSION,
    SESSIONS,
    SINGLE_RUN,
    sessions_of,
)
from trademl_assets.sleeves import model_trials

WEIGHTS_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "weight": pl.Float64,
    "score": pl.Float64,
    "sigma": pl.Float64,
    "adv": pl.Float64,
    "source": pl.String,
}


def portfolio_params(s: Settings) -> PortfolioParams:
    """The sizing parameters of the settings in force."""
    p = s.portfolio
    return PortfolioParams(
        ic=p.expected_ic,
        kelly_fraction=p.kelly_fraction,
        vol_target=p.vol_target,
        name_cap=p.name_cap,
        gross_cap=p.gross_cap,
        long_only=not p.long_short,
    )


def cost_model(s: Settings) -> CostModel:
    """The one cost model of the settings in force (backtest and order planner)."""
    c = s.costs
    return CostModel(
        fee_bps=c.fee_bps,
        half_spread_bps=c.half_spread_bps,
        impact_coef=c.impact_coef,
        borrow_bps_tiers=tuple(c.borrow_bps_tiers),
        auction_slippage_bps=c.auction_slippage_bps,
    )


def backtest_params(s: Settings) -> BacktestParams:
    b = s.backtest
    return BacktestParams(lag=b.execution_lag, price=b.price, capital=b.initial_capital)


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="portfolio",
    io_manager_key="lake",
    metadata={"partition_column": "date"},
    kinds={"polars"},
)
def target_weights(
    context: dg.AssetExecutionContext,
    features: pl.DataFrame,
    equities_xs_scores: pl.DataFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """Target weights per (session, symbol), decided at the session's close.

    Champion scores where the session has them, else the configured fit-free fallback
    signal; rank z-score → fractional Kelly → vol target → confidence → name and gross caps.
    """
    s = settings.get()
    scores = alpha_scores(
        equities_xs_scores, features, fallback_feature=s.portfolio.fallback_feature
    )
    risk = risk_from_features(features)
    if scores.height == 0:
        out = pl.DataFrame(schema=WEIGHTS_SCHEMA)
    else:
        w = build_weights(
            scores.select("date", "symbol", "score"),
            risk.select("date", "symbol", "sigma"),
            portfolio_params(s),
            confidence=s.portfolio.confidence,
        )
        out = (
            w.join(scores, on=["date", "symbol"], how="left")
            .join(risk, on=["date", "symbol"], how="left")
            .select(list(WEIGHTS_SCHEMA))
            .cast(WEIGHTS_SCHEMA)
            .sort("date", "symbol")
        )
    last = out.filter(pl.col("date") == out.get_column("date").max()) if out.height else out
    meta = frame_metadata(out, len(context.partition_keys))
    meta |= {
        "sources": dg.MetadataValue.json(sorted(set(out.get_column("source").to_list()))),
        "gross_last_session": dg.MetadataValue.float(
            float(last.get_column("weight").abs().sum()) if last.height else 0.0
        ),
        "names_last_session": dg.MetadataValue.int(int((last.get_column("weight") != 0).sum())),
    }
    return dg.Output(out, metadata=meta)


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="portfolio",
    io_manager_key="lake",
    ins={  # the window shrinks to what exists when history is shorter than the lookback
        "target_weights": dg.AssetIn(
            partition_mapping=BACKTEST_LOOKBACK, metadata={MISSING_OK: True}
        ),
        "bars": dg.AssetIn(partition_mapping=BACKTEST_LOOKBACK, metadata={MISSING_OK: True}),
    },
    metadata={"partition_column": "date"},
    kinds={"numpy"},
)
def backtest(
    context: dg.AssetExecutionContext,
    target_weights: pl.LazyFrame,
    bars: pl.LazyFrame,
    settings: SettingsResource,
    lake_store: LakeResource,
) -> dg.Output[pl.DataFrame]:
    """As of each session: the trailing window of target weights replayed with costs and
    borrow (next-open fills), one row per window session, with benchmark and rank IC; its
    DSR deflates for the trials searched to pick the models behind the weights."""
    s = settings.get()
    weights = target_weights.collect()
    trials = model_trials(lake_store.lake, "equities_xs_model")
    b = bars.select("date", "symbol", "open", "close").collect()
    risk = weights.select("date", "symbol", "sigma", "adv")
    parts, last = [], None
    bar_dates = b.get_column("date").unique().to_list()
    for session in sessions_of(context.partition_keys):
        # the lookback the mapping loaded (the last W sessions ≤ d), from the first position
        window = backtest_window(weights, bar_dates, session, s.backtest.sessions)
        sources = weights.filter(pl.col("date").is_between(window[0], window[-1]))["source"]
        n_trials = trials_behind(sources.unique().to_list(), trials)
        last = trailing_backtest(
            weights,
            b,
            risk,
            window,
            params=backtest_params(s),
            costs=cost_model(s),
            n_trials=n_trials,
        )
        parts.append(
            last.frame.rename({"date": "session"}).with_columns(
                pl.lit(session).alias("date"), pl.lit(n_trials).alias("n_trials")
            )
        )
    assert last is not None
    out = pl.concat(parts).select("date", pl.exclude("date"))
    f = last.frame
    dates = f.get_column("date").to_list()
    meta = {
        **{k: dg.MetadataValue.float(float(v)) for k, v in last.metrics.items()},
        "n_trials": dg.MetadataValue.int(int(out.get_column("n_trials")[-1])),
        "equity": png_metadata(
            equity_png(
                f.get_column("equity").to_numpy(),
                f.get_column("benchmark_equity").to_numpy(),
                dates,
                benchmark_label="equal-weight market",
            )
        ),
        "drawdown": png_metadata(drawdown_png(f.get_column("equity").to_numpy(), dates)),
    }
    return dg.Output(out, metadata=meta)


def _qc_for(lake_store: LakeResource, session: str) -> tuple[str, str]:
    """The session's QC verdict as the bars asset recorded it (UNKNOWN when absent)."""
    lake = lake_store.lake
    if session not in lake.partitions(QC_TABLE):
        return "UNKNOWN", "no QC verdict recorded for this session"
    row = lake.scan(QC_TABLE, [session]).collect()
    return (row.item(0, "status"), row.item(0, "reasons")) if row.height else ("UNKNOWN", "")


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=PER_SESSION,
    group_name="portfolio",
    io_manager_key="lake",
    ins={
        # the previous session's book may not exist (the first report): trades start from flat
        "target_weights": dg.AssetIn(
            partition_mapping=PREVIOUS_SESSION, metadata={MISSING_OK: True}
        )
    },
    metadata={"partition_column": "date"},
    kinds={"mlflow"},
)
def daily_report(
    context: dg.AssetExecutionContext,
    target_weights: pl.LazyFrame,
    backtest: pl.DataFrame,
    bars: pl.DataFrame,
    settings: SettingsResource,
    lake_store: LakeResource,
    mlflow: MlflowResource,
) -> dg.Output[pl.DataFrame]:
    """`$TRADEML_HOME/reports/equities_<session>.json` and `.md` with PNG plots: picks,
    weights, expected costs, risk, model versions and QC; plots also go to MLflow."""
    s = settings.get()
    session = sessions_of([context.partition_key])[0]
    w = target_weights.collect()
    today = w.filter(pl.col("date") == session)
    if today.height == 0:
        raise dg.Failure(
            description=f"daily_report {session}: target_weights for {session} are not written; "
            "materialize target_weights for it first"
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
    sources = sorted({x for x in today.get_column("source").to_list() if x.startswith("equities")})
    vol = forecast_vol(
        today.select("date", "symbol", "weight"), today.select("date", "symbol", "sigma")
    )
    qc_status, qc_reasons = _qc_for(lake_store, context.partition_key)
    bt = backtest.sort("session")
    report = session_report(
        session=session,
        weights=today,
        trade_costs=costs,
        backtest_metrics=_summary(bt),
        forecast_vol=float(vol.get_column("vol")[0]) if vol.height else float("nan"),
        model_versions={"equities_xs": ", ".join(x.split("@")[1] for x in sources)}
        if sources
        else {},
        qc_status=qc_status,
        book_capital=capital,
        qc_reasons=qc_reasons,
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
    return m
