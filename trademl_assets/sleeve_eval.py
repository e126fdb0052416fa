"""The evaluation suite on a freshly trained alpha sleeve or stacker: its out-of-fold rows
against the realized forward return (`labels`), scalar metrics logged with the run (prefix
``eval_``), the residual histogram and per-session IC bars, the per-session table, and — with
a champion as of that session — a paired bootstrap interval on challenger − champion mean
rank IC over the rows both scored out of fold."""

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from trademl.config import Settings
from trademl.lake import Lake
from trademl.models.sleeve import Trained
from trademl.validation.evaluation import (
    evaluate,
    evaluation_figures,
    oof_rows,
    paired_rank_ic_bootstrap,
)


def _labels(lake: Lake, first: dt.date, as_of: dt.date, target: str) -> pl.DataFrame:
    """(date, symbol, `target`) of the labels known by `as_of` (partitions are t1) whose
    decision date is ≥ `first` — what the OOF rows are judged against."""
    keys = [k for k in lake.partitions("labels") if first.isoformat() <= k <= as_of.isoformat()]
    if not keys:
        return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String})
    return (
        lake.scan("labels", keys)
        .filter((pl.col("name") == target) & (pl.col("date") >= first))
        .select("date", "symbol", pl.col("value").alias(target))
        .collect()
    )


def _champion_oof(lake: Lake, oof_key: str, champion: dict[str, Any] | None) -> pl.DataFrame:
    if champion is None or not champion.get("version"):
        return pl.DataFrame()
    keys = lake.partitions(oof_key)
    if not keys:
        return pl.DataFrame()
    return (
        lake.scan(oof_key, keys)
        .filter(pl.col("version") == str(champion["version"]))
        .drop("version", "as_of", strict=False)
        .collect()
    )


def evaluate_rows(
    trained: Trained, pred: np.ndarray, y: np.ndarray, period: np.ndarray, s: Settings, title: str
) -> None:
    """Add the suite on (prediction, realized target, period) rows a sleeve judged itself on
    — a sizing policy's signed positions against the next-session returns of its held-out
    sessions — to `trained`."""
    ev = evaluate(pred, y, period, k=s.evaluation.k)
    trained.metrics.update({f"eval_{k}": v for k, v in ev.metrics.items()})
    trained.figures.update(evaluation_figures(ev, title))
    trained.tables["evaluation/per_session.parquet"] = ev.per_period.rename({"period": "date"})


def evaluate_trained(
    trained: Trained,
    lake: Lake,
    s: Settings,
    name: str,
    oof_key: str | None,
    champion: dict[str, Any] | None,
    as_of: dt.date,
) -> None:
    """Add the suite's metrics, figures and table to `trained` (module docstring)."""
    if trained.oof is None or not trained.oof.height:
        return
    target = f"fwd_ret_{s.labels.horizon}"
    labels = _labels(lake, trained.oof.get_column("date").min(), as_of, target)
    if target not in labels.columns:
        return
    rows = oof_rows(trained.oof, labels, target)
    cfg = s.evaluation
    ev = evaluate(
        rows.get_column("pred").to_numpy(),
        rows.get_column("y").fill_null(np.nan).to_numpy(),
        rows.get_column("date").to_numpy(),
        k=cfg.k,
        expected_rows=trained.oof.height,
    )
    trained.metrics.update({f"eval_{k}": v for k, v in ev.metrics.items()})
    trained.figures.update(evaluation_figures(ev, name))
    trained.tables["evaluation/per_session.parquet"] = ev.per_period.rename({"period": "date"})
    old = _champion_oof(lake, oof_key, champion) if oof_key else pl.DataFrame()
    if not old.height:
        return
    both = rows.join(
        oof_rows(old, labels, target).select("date", "symbol", pl.col("pred").alias("champ")),
        on=["date", "symbol"],
    ).drop_nulls()
    if both.get_column("date").n_unique() < 2:
        return
    ci = paired_rank_ic_bootstrap(
        both.get_column("pred").to_numpy(),
        both.get_column("champ").to_numpy(),
        both.get_column("y").to_numpy(),
        both.get_column("date").to_numpy(),
        n_boot=cfg.n_boot,
        level=cfg.level,
        seed=cfg.seed,
    )
    trained.metrics.update(
        {
            "eval_rank_ic_vs_champion": ci.diff,
            "eval_rank_ic_vs_champion_lo": ci.lo,
            "eval_rank_ic_vs_champion_hi": ci.hi,
            "eval_rank_ic_vs_champion_rows": float(both.height),
        }
    )
