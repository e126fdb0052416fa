"""Shadow books: every registered challenger that is not champion — of any sleeve, the
stacker or a sizing policy — and every live allocation agent (champion or challenger; agents
are never served) trades on paper from its as-of session on, through the same
portfolio construction and the same backtest as the served book."""

import tempfile
from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.backtest.shadow import SHADOW_SCHEMA, book_summaries
from trademl.params import backtest_params, cost_model, portfolio_params
from trademl.portfolio import target_weights as build_weights
from trademl.portfolio.inputs import risk_from_features
from trademl.portfolio.router import wide_scores
from trademl_assets.agent_shadow import agent_books, agents_materialized
from trademl_assets.equities import collected
from trademl_assets.history import ModelCache, challenger_as_of, champion_history, model_rows
from trademl_assets.metadata import frame_metadata, markdown_table
from trademl_assets.partitions import BACKTEST_LOOKBACK, SESSIONS, SINGLE_RUN, sessions_of
from trademl_assets.policy import SIZING_HISTORY_INS, history_upto, size_book, sizing_inputs
from trademl_assets.sleeves import SleeveSpec

BOOK_SCHEMA = {
    "date": pl.Date,
    "book": pl.String,
    "kind": pl.String,
    "sleeve": pl.String,
    "version": pl.String,
    "symbol": pl.String,
    "weight": pl.Float64,
    "score": pl.Float64,
    "sigma": pl.Float64,
    "adv": pl.Float64,
}


def _weights(scores: pl.DataFrame, feats: pl.DataFrame, s: Any) -> pl.DataFrame:
    """A scored session → target weights by the served book's own construction."""
    risk = risk_from_features(feats)
    w = build_weights(
        scores.select("date", "symbol", "score"),
        risk.select("date", "symbol", "sigma"),
        portfolio_params(s),
        confidence=s.portfolio.confidence,
    )
    return w.join(scores.select("date", "symbol", "score"), on=["date", "symbol"], how="left").join(
        risk, on=["date", "symbol"], how="left"
    )


def shadow_weights_asset(
    alpha: Sequence[SleeveSpec], stacker: SleeveSpec | None, sizing: Sequence[SleeveSpec]
) -> Any:
    """`shadow_weights`: each challenger's book per session."""

    @dg.asset(
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        group_name="portfolio",
        io_manager_key="lake",
        ins={sp.scores_key: dg.AssetIn(sp.scores_key) for sp in alpha} | SIZING_HISTORY_INS,
        metadata={"partition_column": "date"},
        kinds={"polars"},
    )
    def shadow_weights(
        context: dg.AssetExecutionContext,
        features: pl.LazyFrame,
        target_weights: pl.LazyFrame,
        bars: pl.LazyFrame,
        settings: SettingsResource,
        lake_store: LakeResource,
        mlflow: MlflowResource,
        **scores: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        """Per session, the book of every challenger as of it: an alpha sleeve's challenger
        scores alone; a stacker challenger over the sleeves' champion scores; a sizing
        challenger on the target weights — each with the served book's construction."""
        s = settings.get()
        lake = lake_store.lake
        scores = {k: collected(v) for k, v in scores.items()}
        window = sizing_inputs(target_weights, features, bars, s, lake, context.partition_keys)
        run = sessions_of(context.partition_keys)
        features = features.filter(pl.col("date").is_between(run[0], run[-1])).collect()
        parts = []
        all_books: list[tuple[str, str, str, pl.DataFrame]] = []
        histories = {
            sp.name: champion_history(lake, sp.champion_key)
            for sp in [*alpha, *sizing, *([stacker] if stacker else [])]
        }
        registered = {
            sp.name: model_rows(lake, sp.model_key)
            for sp in [*sizing, *([stacker] if stacker else [])]
        }
        with tempfile.TemporaryDirectory() as tmp:
            caches = {
                sp.name: ModelCache(mlflow, sp.load, f"{tmp}/{sp.name}")
                for sp in [*sizing, *([stacker] if stacker else [])]
            }
            for session in sessions_of(context.partition_keys):
                feats = features.filter(pl.col("date") == session)
                day = {
                    sp.name: scores[sp.scores_key].filter(pl.col("date") == session) for sp in alpha
                }
                books: list[tuple[str, str, str, pl.DataFrame]] = []
                for name, frame in day.items():
                    ch = frame.filter(pl.col("role") == "challenger")
                    if ch.height:
                        books.append(
                            (
                                "sleeve",
                                name,
                                ch.get_column("model_version")[0],
                                _weights(ch, feats, s),
                            )
                        )
                if stacker is not None:
                    row = challenger_as_of(registered["stacker"], histories["stacker"], session)
                    if row is not None:
                        model = caches["stacker"].get(row)
                        champs = {k: v.filter(pl.col("role") == "champion") for k, v in day.items()}
                        if all(champs.get(n, pl.DataFrame()).height for n in model.sleeves):
                            wide = wide_scores(session, {n: champs[n] for n in model.sleeves})
                            books.append(
                                (
                                    "stacker",
                                    "stacker",
                                    str(row["version"]),
                                    _weights(model.score(wide), feats, s),
                                )
                            )
                today = window[0].filter(pl.col("date") == session)
                for sp in sizing:
                    row = challenger_as_of(registered[sp.name], histories[sp.name], session)
                    if row is not None and today.height:
                        model = caches[sp.name].get(row)
                        known = history_upto(window, session)
                        sized = size_book(today, feats, model, s, known)
                        books.append(("sizing", sp.name, str(row["version"]), sized))
                all_books.extend(books)
        # the allocation agents' weekly books (never served; trademl_assets.agent_shadow)
        if agents_materialized(context.instance):
            all_books.extend(
                agent_books(s, mlflow, lake, run, risk_from_features(features), context.log.info)
            )
        for kind, name, version, w in all_books:
            parts.append(
                w.select("date", "symbol", "weight", "score", "sigma", "adv").with_columns(
                    pl.lit(f"{name}@{version}").alias("book"),
                    pl.lit(kind).alias("kind"),
                    pl.lit(name).alias("sleeve"),
                    pl.lit(version).alias("version"),
                )
            )
        out = (
            pl.concat(parts, how="diagonal_relaxed").select(list(BOOK_SCHEMA)).cast(BOOK_SCHEMA)
            if parts
            else pl.DataFrame(schema=BOOK_SCHEMA)
        )
        meta = frame_metadata(out, len(context.partition_keys))
        meta["books"] = dg.MetadataValue.json(sorted(set(out.get_column("book").to_list())))
        return dg.Output(out, metadata=meta)

    return shadow_weights


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="portfolio",
    io_manager_key="lake",
    ins={
        name: dg.AssetIn(partition_mapping=BACKTEST_LOOKBACK, metadata={MISSING_OK: True})
        for name in ("shadow_weights", "sized_weights", "bars")
    },
    metadata={"partition_column": "date"},
    kinds={"numpy"},
)
def shadow_books(
    context: dg.AssetExecutionContext,
    shadow_weights: pl.LazyFrame,
    sized_weights: pl.LazyFrame,
    bars: pl.LazyFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """As of each session: the served book and every shadow book side by side over the
    trailing window (each from its first session): sessions, net return, Sharpe, turnover
    and realized rank IC, through the same backtest and costs."""
    s = settings.get()
    shadows = shadow_weights.collect()
    served = sized_weights.select("date", "symbol", "weight", "score", "sigma", "adv").collect()
    b = bars.select("date", "symbol", "open", "close").collect()
    parts = [
        book_summaries(
            served,
            shadows,
            b,
            session,
            window=s.backtest.sessions,
            params=backtest_params(s),
            costs=cost_model(s),
        )
        for session in sessions_of(context.partition_keys)
    ]
    out = pl.concat(parts) if parts else pl.DataFrame(schema=SHADOW_SCHEMA)
    last = out.filter(pl.col("date") == out.get_column("date").max()) if out.height else out
    return dg.Output(
        out,
        metadata={
            "books": dg.MetadataValue.int(last.height),
            "side_by_side": dg.MetadataValue.md(markdown_table(last.drop("date"), n=20)),
        },
    )
