"""The allocation agents' books in the shadow: every agent version holding the `champion` or
`challenger` alias trades on paper from the first session after its year end, at each
session holding the targets its ONNX graph set at the latest week end ≤ that session (the
calendar's week ends, from cash at its first one), each week's state read from the forecaster
snapshot of the previous year end. Agents are never served: their books are for comparison.

A book stops at the last year whose forecaster snapshot is registered under today's
settings (the log says which snapshot to train to go on).
"""

import datetime as dt
import tempfile
from collections.abc import Callable, Sequence

import dagster as dg
import polars as pl

from resources.mlflow import CHALLENGER, CHAMPION, MlflowResource
from trademl.config import Settings
from trademl.lake import Lake, session_keys
from trademl.models.agents.book import agent_book
from trademl.models.agents.export import ONNX_FILE, OnnxAgent
from trademl.models.agents.panel import MOMENTUM_SESSIONS
from trademl.models.agents.snapshot import AGENTS, split_name
from trademl_assets.agents import (
    SYMBOLS_TAG,
    _load_version,
    forecast_panel,
    snapshot_version,
)
from trademl_assets.partitions import agent_live_sessions

Book = tuple[str, str, str, pl.DataFrame]


def agents_materialized(instance: dg.DagsterInstance) -> bool:
    """Whether any agent asset ever materialized on this instance. Agents are registered
    only by their assets, so without one there is nothing to look up — and a daily run does
    not import MLflow and open its registry (≈ 1 s) to find nothing."""
    keys = [dg.AssetKey(f"{name}_agent") for name in AGENTS]
    return any(r.asset_entry.last_materialization for r in instance.get_asset_records(keys))


def _live_versions(mlflow: MlflowResource) -> list[tuple[str, str, dict[str, str]]]:
    """(name, version, tags) of every agent version holding champion or challenger."""
    if mlflow.store_is_empty():
        return []
    quoted = ", ".join(f"'{n}'" for n in AGENTS)
    names = {v.name for v in mlflow.client().search_model_versions(f"name IN ({quoted})")}
    out = {}
    for name in sorted(names):
        for alias in (CHAMPION, CHALLENGER):
            v = mlflow.alias_version(name, alias)
            if v is not None:
                out[(name, str(v.version))] = dict(v.tags)
    return [(n, v, tags) for (n, v), tags in out.items()]


def _weekly_targets(
    s: Settings,
    mlflow: MlflowResource,
    lake: Lake,
    name: str,
    version: str,
    tags: dict[str, str],
    upto: dt.date,
    tmp: str,
    log: Callable[[str], None],
) -> pl.DataFrame:
    """(date = week end, symbol, weight, score) of one agent version through `upto`'s week."""
    _, forecaster = split_name(name)
    c = getattr(s, forecaster)
    year = int(tags["trademl.snapshot"])
    lead, live = agent_live_sessions(str(year), upto, c.seq_len + MOMENTUM_SESSIONS)
    snapshots: dict[str, str] = {}
    for y in range(year, live[-1].year if live else year):
        v = snapshot_version(s, mlflow, forecaster, str(y))
        if v is None:
            log(
                f"shadow {name}@{version}: stops at {y}-12-31, no {forecaster} snapshot of {y} "
                f"under today's settings (materialize {forecaster}_snapshot {y})"
            )
            live = [d for d in live if d.year <= y]
            break
        snapshots[str(y)] = v
    if not live or not snapshots:
        return pl.DataFrame()
    names = tags[SYMBOLS_TAG].split(",")
    have = set(lake.partitions("bars"))
    keys = [k for k in session_keys(lead + live) if k in have]
    bars = lake.scan("bars", keys).filter(pl.col("symbol").is_in(names)).collect()
    folder = _load_version(mlflow, name, version, tmp)
    panel = forecast_panel(
        s, mlflow, bars, forecaster, names, lead + live, live[0], snapshots, tmp, open_end=True
    )
    cost = s.costs.fee_bps + s.costs.half_spread_bps
    targets = agent_book(OnnxAgent((folder / ONNX_FILE).read_bytes()).weights, panel, cost)
    return pl.DataFrame(
        {
            "date": [w for w in panel.weeks.astype(dt.date) for _ in names],
            "symbol": names * panel.n_weeks,
            "weight": targets[:, :-1].reshape(-1),
            "score": panel.forecast.reshape(-1),
        },
        schema={"date": pl.Date, "symbol": pl.String, "weight": pl.Float64, "score": pl.Float64},
    )


def agent_books(
    s: Settings,
    mlflow: MlflowResource,
    lake: Lake,
    sessions: Sequence[dt.date],
    risk: pl.DataFrame,
    log: Callable[[str], None],
) -> list[Book]:
    """("agent", name, version, weights) per live agent version: for each of `sessions`
    after its year end, the targets of the latest week end ≤ it, with `risk`'s sigma and adv
    (date, symbol, sigma, adv)."""
    books: list[Book] = []
    run = sorted(sessions)
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, tags in _live_versions(mlflow):
            year = int(tags.get("trademl.snapshot", "0") or 0)
            mine = [d for d in run if d.year > year]
            if not mine or SYMBOLS_TAG not in tags:
                continue
            weekly = _weekly_targets(s, mlflow, lake, name, version, tags, mine[-1], tmp, log)
            if weekly.is_empty():
                continue
            held = (
                pl.DataFrame({"date": mine}, schema={"date": pl.Date})
                .sort("date")
                .join_asof(
                    weekly.select(pl.col("date").alias("week"), pl.col("date"))
                    .unique()
                    .sort("date"),
                    on="date",
                    strategy="backward",
                )
                .drop_nulls("week")
                .join(weekly.rename({"date": "week"}), on="week")
                .drop("week")
                .join(risk, on=["date", "symbol"], how="left")
            )
            if held.height:
                books.append(("agent", name, version, held))
    return books
