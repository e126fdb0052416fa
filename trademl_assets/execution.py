"""Execution stage: the session's orders (exactly once, behind tripwires) and the blotter."""

import datetime as dt
import json

import dagster as dg
import polars as pl

from resources.broker import BrokerResource
from resources.lake import LakeResource
from resources.settings import MarketDataResource, SettingsResource
from trademl.config import Settings
from trademl.execution.brokers import Broker, SubmitResult, results_frame, submit_all
from trademl.execution.orders import (
    Order,
    PlanParams,
    gross_exposure,
    orders_frame,
    plan_orders,
    planned_turnover,
)
from trademl.execution.reconcile import blotter_summary, reconcile_broker, write_blotter
from trademl.execution.replay import ReplayBroker, ReplayParams
from trademl.execution.session import feature_drift, slice_plan
from trademl.execution.tripwires import SessionFacts, check_tripwires
from trademl.params import backtest_params, cost_model, tripwire_limits
from trademl_assets.data import qc_for
from trademl_assets.metadata import markdown_table
from trademl_assets.partitions import CALENDAR, DRIFT_LOOKBACK, PER_SESSION, SESSIONS, sessions_of

ORDER_COLUMNS = {
    "date": pl.Date,
    "client_order_id": pl.String,
    "symbol": pl.String,
    "side": pl.String,
    "qty": pl.Int64,
    "order_type": pl.String,
    "ref_price": pl.Float64,
    "notional": pl.Float64,
    "position_before": pl.Float64,
    "status": pl.String,
    "reason": pl.String,
    "slices": pl.String,
}


#: Broker calls can fail for a moment (network, rate limits): retry the step; submission is
#: idempotent (deterministic client_order_id), so a retry never double-submits.
BROKER_RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def broker_dir(s: Settings) -> str:
    """Where the broker's records (dry-run ledger, submission journal) and blotters live."""
    return str(s.home / "broker")


def open_broker(
    broker: BrokerResource,
    s: Settings,
    session: dt.date,
    weights: pl.DataFrame,
    market_data: MarketDataResource,
) -> Broker:
    """The session's broker; the replay also gets the source's bars, the session's risk
    (ADV, σ of the weights) and the backtest's fill and cost settings."""
    if broker.kind != "replay":
        return broker.get_broker(broker_dir(s), session=session)
    nan = float("nan")
    risk = {
        sym: (nan if adv is None else adv, nan if sigma is None else sigma)
        for sym, adv, sigma in weights.select("symbol", "adv", "sigma").iter_rows()
    }
    return broker.get_broker(
        broker_dir(s),
        session=session,
        source=market_data.open(),
        calendar=market_data.calendar(),
        risk=risk,
        params=ReplayParams.from_backtest(backtest_params(s), s.execution.capital),
        costs=cost_model(s),
    )


def _session_times(session: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The next session's regular hours in UTC, when orders decided at `session` execute."""
    return CALENDAR.hours(CALENDAR.next_session(session))


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=PER_SESSION,
    retry_policy=BROKER_RETRY,
    group_name="execution",
    io_manager_key="lake",
    ins={"features": dg.AssetIn(partition_mapping=DRIFT_LOOKBACK)},
    metadata={"partition_column": "date"},
    kinds={"alpaca"},
)
def orders(
    context: dg.AssetExecutionContext,
    sized_weights: pl.DataFrame,
    bars: pl.DataFrame,
    features: pl.LazyFrame,
    settings: SettingsResource,
    broker: BrokerResource,
    lake_store: LakeResource,
    market_data: MarketDataResource,
) -> dg.Output[pl.DataFrame]:
    """Orders that move the broker's positions to the session's traded (sized) weights.

    Each carries a deterministic client_order_id, so re-running the partition never
    double-submits; any tripwire (RED QC, turnover, gross, stale bars, feature drift)
    halts every order of the session and says why. Live brokers refuse every session but
    the latest; the replay broker (``execution.broker: replay``) fills past ones.
    """
    s = settings.get()
    session = sessions_of([context.partition_key])[0]
    brk = open_broker(broker, s, session, sized_weights, market_data)
    positions = brk.positions()
    prices = dict(bars.select("symbol", "close").iter_rows())
    equity = brk.account().equity
    if isinstance(brk, ReplayBroker):  # sized as the backtest: capital C at the fill price
        prices, equity = brk.sizing_prices(prices), brk.capital
    targets = {
        sym: w for sym, w in sized_weights.select("symbol", "weight").iter_rows() if w != 0.0
    }
    e = s.execution
    plan = plan_orders(
        targets,
        positions,
        prices,
        equity,
        session=session,
        params=PlanParams(lot_size=e.lot_size, min_notional=e.min_notional),
    )
    qc_status, _ = qc_for(lake_store.lake, context.partition_key)
    drift, drift_detail = feature_drift(
        features.collect(), session, threshold=e.max_feature_drift_z
    )
    facts = SessionFacts(
        session=session,
        qc_status=qc_status,
        turnover=planned_turnover(plan, equity),
        gross=gross_exposure(targets),
        latest_bar_date=bars.get_column("date").max() if bars.height else None,
        drift=drift,
        drift_detail=drift_detail,
    )
    halts = check_tripwires(facts, tripwire_limits(s))
    latest = SESSIONS.get_last_partition_key()
    if context.partition_key != latest and not isinstance(brk, ReplayBroker):
        halts.append(
            f"session {session} is not the latest completed session {latest}: orders for a "
            "past session would execute at the wrong time and are never sent"
        )
    for reason in halts:
        context.log.warning(f"orders halted: {reason}")
    results = submit_all(brk, plan, halt_reasons=halts)
    out = _orders_output(session, plan, positions, results, sized_weights, s)
    summary = results_frame(results).group_by("status").len().sort("status")
    return dg.Output(
        out,
        metadata={
            "broker": brk.name,
            "orders": len(plan),
            "halted": bool(halts),
            "halt_reasons": dg.MetadataValue.json(halts),
            "turnover": float(facts.turnover),
            "gross": float(facts.gross),
            "drift": drift_detail,
            "status": dg.MetadataValue.md(markdown_table(summary)),
            "preview": dg.MetadataValue.md(markdown_table(out.drop("slices"), n=15)),
        },
    )


_SLICE_FIELDS = ("slice", "at", "qty", "method")


def _orders_output(
    session: dt.date,
    plan: list[Order],
    positions: dict[str, float],
    results: list,
    weights: pl.DataFrame,
    s: Settings,
) -> pl.DataFrame:
    """The plan with each order's submission outcome and its child-slice schedule (JSON)."""
    start, end = _session_times(session)
    risk = {
        r["symbol"]: (r["sigma"], r["adv"])
        for r in weights.select("symbol", "sigma", "adv").iter_rows(named=True)
    }
    slices = slice_plan(
        plan,
        risk,
        start=start,
        end=end,
        n_slices=s.execution.slices,
        method=s.execution.schedule,
        half_spread_bps=s.costs.half_spread_bps,
        fee_bps=s.costs.fee_bps,
        risk_aversion=s.execution.risk_aversion,
    )
    # each parent's children as a JSON list (what `DataFrame.write_json` writes for them), in
    # one pass over the rows rather than a frame per parent (~2,000 parents a day)
    children: dict[str, list[dict[str, object]]] = {}
    for pid, *child in slices.select("parent_id", *_SLICE_FIELDS).iter_rows():
        children.setdefault(pid, []).append(dict(zip(_SLICE_FIELDS, child, strict=True)))
    per_parent = {pid: json.dumps(c, separators=(",", ":")) for pid, c in children.items()}
    res = results_frame(results).select("client_order_id", "status", "reason")
    plan_df = orders_frame(plan)
    if plan_df.height == 0:
        return pl.DataFrame(schema=ORDER_COLUMNS)
    return (
        plan_df.rename({"session": "date"})
        .join(res, on="client_order_id", how="left")
        .with_columns(
            pl.col("symbol")
            .replace_strict(positions, default=0.0)
            .cast(pl.Float64)
            .alias("position_before"),
            pl.col("client_order_id").replace_strict(per_parent, default="[]").alias("slices"),
        )
        .select(list(ORDER_COLUMNS))
        .cast(ORDER_COLUMNS)
    )


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=PER_SESSION,
    retry_policy=BROKER_RETRY,
    group_name="execution",
    io_manager_key="lake",
    metadata={"partition_column": "date"},
    kinds={"alpaca"},
)
def blotter(
    context: dg.AssetExecutionContext,
    orders: pl.DataFrame,
    settings: SettingsResource,
    broker: BrokerResource,
) -> dg.Output[pl.DataFrame]:
    """Morning reconciliation: the broker's orders, fills and positions vs the session's plan.

    Written to the lake and as `$TRADEML_HOME/broker/date=…/blotter.{parquet,csv}`.
    """
    s = settings.get()
    session = sessions_of([context.partition_key])[0]
    brk = broker.get_broker(broker_dir(s))
    intended = [
        Order(
            session=session,
            symbol=r["symbol"],
            side=r["side"],
            qty=int(r["qty"]),
            order_type=r["order_type"],
            ref_price=r["ref_price"],
            client_order_id=r["client_order_id"],
        )
        for r in orders.iter_rows(named=True)
    ]
    before = {r["symbol"]: r["position_before"] for r in orders.iter_rows(named=True)}
    outcomes = [  # halted or rejected orders were never sent: not "missing at the broker"
        SubmitResult(
            client_order_id=r["client_order_id"],
            symbol=r["symbol"],
            side=r["side"],
            qty=int(r["qty"]),
            status=r["status"],
            reason=r["reason"] or "",
        )
        for r in orders.iter_rows(named=True)
    ]
    frame = reconcile_broker(
        brk, intended, positions_before=before, results=outcomes, session=session
    )
    path = write_blotter(frame, broker_dir(s), session)
    out = frame.with_columns(pl.lit(session).alias("date")).select("date", pl.exclude("date"))
    summary = blotter_summary(frame)
    return dg.Output(
        out,
        metadata={
            **{k: dg.MetadataValue.float(v) for k, v in summary.items()},
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(markdown_table(frame, n=15)),
        },
    )
