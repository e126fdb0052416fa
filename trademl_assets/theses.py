"""The thesis sleeve (`thesis_model` → `thesis_champion` → `thesis_scores`, registered
`thesis`): the decision head's expected sign is an alpha sleeve the stacker may combine
(`stacker.sleeves: [..., thesis]` makes it publish CPCV out-of-fold rows on the CPCV
sleeves' layout); and `theses`, a validated thesis for every name in the
session's book by the champion as of that session, JSON in the lake, which the daily report
shows for the top longs and shorts."""

import datetime as dt
import json
import tempfile
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.lake import Lake
from trademl.models.sleeve import Trained
from trademl.models.theses.sleeve import THESES_SCHEMA, ThesisScorer, decide, train_thesis
from trademl_assets.equities import SCORE_INS, TRAIN_INS, collected
from trademl_assets.history import ModelCache, champion_as_of, champion_history
from trademl_assets.metadata import markdown_table
from trademl_assets.partitions import CALENDAR, SESSIONS, SINGLE_RUN, sessions_of
from trademl_assets.sleeves import SleeveSpec

GATE_TEXT = (
    "Walk-forward (theses.n_folds × fold_train + fold_test sessions): the RFT model's "
    "decision-sign book Sharpe beats SFT's by theses.promotion.margin, reaches min_sharpe, "
    "and ≥ min_validity of its theses pass the JSON Schema; NaN fails closed."
)


def _train(inputs: Mapping[str, Any], as_of: dt.date, s: Settings, log: Any) -> Trained:
    features, labels = collected(inputs["features"]), collected(inputs["labels"])
    return train_thesis(features, labels, as_of, s, log, sessions=CALENDAR.sessions)


def _score(model: ThesisScorer, inputs: Mapping[str, Any], session: dt.date, s: Settings) -> Any:
    return model.score(collected(inputs["features"].filter(pl.col("date") == session)))


SPEC = SleeveSpec(
    name="thesis",
    kind="alpha",
    group="theses",
    ins=TRAIN_INS,
    train=_train,
    decide=lambda m, champ, s: decide(m, champ, s),
    gate_description=GATE_TEXT,
    load=ThesisScorer.load,
    description="The thesis model as of the session: shared encoder, structure / claims / "
    "decision heads, SFT on teacher rules then pairwise ranking RFT on realized returns net "
    "of costs; registered as `thesis`.",
    row_metrics=("sft_sharpe", "rft_sharpe", "rft_validity"),
    kinds=frozenset({"pytorch", "mlflow"}),
    score_ins=SCORE_INS,
    score=_score,
    score_kinds=frozenset({"pytorch"}),
)


def top_theses(theses: pl.DataFrame, weights: pl.DataFrame, n: int) -> list[dict[str, Any]]:
    """The thesis documents of the `n` largest longs and shorts (valid ones only)."""
    ranked = weights.filter(pl.col("weight") != 0).join(
        theses.filter(pl.col("valid")), on="symbol", how="inner"
    )
    longs = ranked.filter(pl.col("weight") > 0).sort("weight", descending=True).head(n)
    shorts = ranked.filter(pl.col("weight") < 0).sort("weight").head(n)
    return [
        {**json.loads(row["thesis"]), "side": side}
        for side, frame in (("long", longs), ("short", shorts))
        for row in frame.iter_rows(named=True)
    ]


def session_theses(lake: Lake, session: dt.date) -> pl.DataFrame:
    """The `theses` rows of one session (empty when none were written)."""
    if session.isoformat() not in lake.partitions("theses"):
        return pl.DataFrame(schema=THESES_SCHEMA)
    return lake.scan("theses", [session.isoformat()]).collect()


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="theses",
    io_manager_key="lake",
    ins={
        "features": dg.AssetIn("features"),
        "target_weights": dg.AssetIn("target_weights"),
    },
    deps=["thesis_champion"],
    metadata={"partition_column": "date"},
    kinds={"pytorch", "polars"},
)
def theses(
    context: dg.AssetExecutionContext,
    features: pl.DataFrame,
    target_weights: pl.DataFrame,
    settings: SettingsResource,
    mlflow: MlflowResource,
    lake_store: LakeResource,
) -> dg.Output[pl.DataFrame]:
    """A thesis for every name in the session's book by the thesis champion as of that
    session (none before the first promotion), each validated against the schema."""
    lake = lake_store.lake
    history = champion_history(lake, SPEC.champion_key)
    feats, weights = collected(features), collected(target_weights)
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelCache(mlflow, SPEC.load, tmp)
        for session in sessions_of(context.partition_keys):
            champ = champion_as_of(history, session)
            if champ is None:
                context.log.info(f"theses {session}: no thesis champion as of it yet")
                continue
            book = weights.filter((pl.col("date") == session) & (pl.col("weight") != 0))
            rows = feats.filter(pl.col("date") == session).join(
                book.select("symbol"), on="symbol", how="semi"
            )
            parts.append(cache.get(champ).theses(rows, str(champ["version"])))
    out = pl.concat(parts) if parts else pl.DataFrame(schema=THESES_SCHEMA)
    valid = float(out.get_column("valid").mean()) if out.height else float("nan")
    meta: dict[str, Any] = {
        "rows": out.height,
        "valid_share": dg.MetadataValue.float(valid),
        "preview": dg.MetadataValue.md(
            markdown_table(out.select("date", "symbol", "decision", "confidence", "valid"))
        ),
    }
    return dg.Output(out, metadata=meta)
