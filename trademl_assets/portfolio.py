"""Portfolio stage: `alpha_scores` (the router over the sleeves), target weights, and the
trailing backtest of the traded (sized) book."""

import json
import tempfile
from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.backtest.plots import drawdown_png, equity_png
from trademl.backtest.trailing import backtest_window, trailing_backtest
from trademl.models.stacker.model import StackerModel
from trademl.params import backtest_params, cost_model, portfolio_params
from trademl.portfolio import target_weights as build_weights
from trademl.portfolio.inputs import risk_from_features
from trademl.portfolio.router import SCHEMA as ALPHA_SCHEMA
from trademl.portfolio.router import StackerCandidate, route_session
from trademl_assets.equities import collected
from trademl_assets.history import ModelCache, champion_history, model_trials
from trademl_assets.metadata import frame_metadata, png_metadata
from trademl_assets.partitions import BACKTEST_LOOKBACK, SESSIONS, SINGLE_RUN, sessions_of
from trademl_assets.sleeves import SleeveSpec

WEIGHTS_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "weight": pl.Float64,
    "score": pl.Float64,
    "sigma": pl.Float64,
    "adv": pl.Float64,
    "source": pl.String,
    "models": pl.String,
    "n_trials": pl.Int64,
}


def _stackers(
    history: pl.DataFrame, trials: dict[str, int], cache: ModelCache, session: Any
) -> list[StackerCandidate]:
    """Stacker promotions dated on or before `session`, newest first (first: the champion)."""
    rows = history.filter(pl.col("date") <= session).sort("date", descending=True)
    return [
        StackerCandidate(
            version=str(r["version"]),
            promoted=r["date"],
            model=cache.get(r),
            n_trials=int(trials.get(str(r["version"]), 1)),
        )
        for r in rows.iter_rows(named=True)
    ]


def alpha_scores_asset(alpha: Sequence[SleeveSpec], stacker: SleeveSpec | None) -> Any:
    """`alpha_scores` over the champion scores of the `alpha` sleeves (see the router)."""

    @dg.asset(
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        group_name="meta",
        io_manager_key="lake",
        ins={sp.scores_key: dg.AssetIn(sp.scores_key) for sp in alpha}
        | {"features": dg.AssetIn("features")},
        metadata={"partition_column": "date"},
        kinds={"polars"},
    )
    def alpha_scores(
        context: dg.AssetExecutionContext,
        features: pl.DataFrame,
        settings: SettingsResource,
        lake_store: LakeResource,
        mlflow: MlflowResource,
        **scores: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        """The score the book trades per (session, symbol): the stacker champion when every
        sleeve it needs scored the session; else a promoted stacker on the sleeves present;
        else router.fallback_weights over them; with no sleeve champion, the fit-free
        portfolio.fallback_feature. `path` and `models` say which, `n_trials` how many
        configurations were searched to get there (for the backtest's DSR)."""
        s = settings.get()
        lake = lake_store.lake
        scores = {k: collected(v) for k, v in scores.items()}
        hist = champion_history(lake, stacker.champion_key) if stacker else pl.DataFrame()
        stacker_trials = model_trials(lake, stacker.model_key) if stacker else {}
        trials = {sp.name: model_trials(lake, sp.model_key) for sp in alpha}
        fallback = s.portfolio.fallback_feature
        if fallback is not None and fallback not in features.columns:
            raise ValueError(f"portfolio.fallback_feature {fallback!r} is not a feature column")
        parts, served = [], {}
        with tempfile.TemporaryDirectory() as tmp:
            cache = ModelCache(mlflow, StackerModel.load, tmp)
            for session in sessions_of(context.partition_keys):
                champs = {
                    sp.name: scores[sp.scores_key].filter(
                        (pl.col("date") == session) & (pl.col("role") == "champion")
                    )
                    for sp in alpha
                }
                versions = {
                    k: v.get_column("model_version")[0] for k, v in champs.items() if v.height
                }
                day = features.filter(pl.col("date") == session)
                routed = route_session(
                    session,
                    champs,
                    versions,
                    {k: trials[k].get(v, 1) for k, v in versions.items()},
                    _stackers(hist, stacker_trials, cache, session) if hist.height else [],
                    stacker_enabled=s.router.stacker_enabled,
                    fallback_weights=s.router.fallback_weights,
                    fit_free=day.select("symbol", pl.col(fallback).alias("score"))
                    if fallback
                    else None,
                    fit_free_name=fallback,
                )
                parts.append(routed.frame)
                served[str(session)] = routed.description
        out = pl.concat(parts) if parts else pl.DataFrame(schema=ALPHA_SCHEMA)
        paths = out.group_by("path").agg(pl.col("date").n_unique()).sort("path")
        meta = frame_metadata(out, len(context.partition_keys))
        meta["sessions_by_path"] = dg.MetadataValue.json(dict(paths.iter_rows()))
        meta["served_last_session"] = dg.MetadataValue.text(list(served.values())[-1])
        for k, v in list(served.items())[-3:]:
            context.log.info(f"alpha_scores {k}: {v}")
        return dg.Output(out, metadata=meta)

    return alpha_scores


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
    alpha_scores: pl.DataFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """Target weights per (session, symbol), decided at the session's close from the served
    alpha scores: rank z-score → fractional Kelly → vol target → confidence → name and gross
    caps. `source` is the router's path, `models` the versions behind it."""
    s = settings.get()
    risk = risk_from_features(features)
    if alpha_scores.height == 0:
        out = pl.DataFrame(schema=WEIGHTS_SCHEMA)
    else:
        w = build_weights(
            alpha_scores.select("date", "symbol", "score"),
            risk.select("date", "symbol", "sigma"),
            portfolio_params(s),
            confidence=s.portfolio.confidence,
        )
        out = (
            w.join(alpha_scores, on=["date", "symbol"], how="left")
            .join(risk, on=["date", "symbol"], how="left")
            .with_columns(pl.col("path").alias("source"))
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
        "sized_weights": dg.AssetIn(
            partition_mapping=BACKTEST_LOOKBACK, metadata={MISSING_OK: True}
        ),
        "bars": dg.AssetIn(partition_mapping=BACKTEST_LOOKBACK, metadata={MISSING_OK: True}),
    },
    metadata={"partition_column": "date"},
    kinds={"numpy"},
)
def backtest(
    context: dg.AssetExecutionContext,
    sized_weights: pl.LazyFrame,
    bars: pl.LazyFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """As of each session: the trailing window of the traded (sized) book replayed with costs
    and borrow (next-open fills), one row per window session, with benchmark and rank IC; its
    DSR deflates for the configurations searched to pick the models behind the weights."""
    s = settings.get()
    weights = sized_weights.collect()
    b = bars.select("date", "symbol", "open", "close").collect()
    risk = weights.select("date", "symbol", "sigma", "adv")
    parts, last = [], None
    bar_dates = b.get_column("date").unique().to_list()
    for session in sessions_of(context.partition_keys):
        window = backtest_window(weights, bar_dates, session, s.backtest.sessions)
        inside = weights.filter(pl.col("date").is_between(window[0], window[-1]))
        n_trials = int(inside.get_column("n_trials").max() or 1) if inside.height else 1
        last = trailing_backtest(
            weights,
            b,
            risk,
            window,
            params=backtest_params(s),
            costs=cost_model(s),
            n_trials=n_trials,
        )
        paths = inside.group_by("source").agg(pl.col("date").n_unique().alias("n")).sort("source")
        parts.append(
            last.frame.rename({"date": "session"}).with_columns(
                pl.lit(session).alias("date"),
                pl.lit(n_trials).alias("n_trials"),
                pl.lit(json.dumps(dict(paths.iter_rows()))).alias("sessions_by_source"),
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
        "sessions_by_source": dg.MetadataValue.json(
            json.loads(out.get_column("sessions_by_source")[-1])
        ),
    }
    return dg.Output(out, metadata=meta)
