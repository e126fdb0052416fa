"""Equities sleeves: one CPCV-trained alpha per model kind in `equities.models` (LightGBM,
CatBoost) on the point-in-time features; each through the sleeve interface (train → gate →
champion → scores as of each session, OOF for the stacker)."""

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import MISSING_OK
from trademl.config import Settings
from trademl.features import feature_names
from trademl.models.equities.bundle import BundleScorer
from trademl.models.equities.pipeline import CPCV_SCALARS, cpcv_trained, train_snapshot
from trademl.models.equities.promotion import decide
from trademl.models.sleeve import Trained
from trademl_assets.partitions import CALENDAR, SETTINGS, TRAIN_LOOKBACK
from trademl_assets.sleeves import SleeveSpec

#: With `train_sessions: all` the window is every session the lake holds, up to the cap.
_ALL = {MISSING_OK: True} if SETTINGS.train_all else None
TRAIN_INS = {
    "features": dg.AssetIn("features", partition_mapping=TRAIN_LOOKBACK, metadata=_ALL),
    "labels": dg.AssetIn("labels", partition_mapping=TRAIN_LOOKBACK, metadata=_ALL),
}
SCORE_INS = {"features": dg.AssetIn("features")}
GATE_TEXT = (
    "Promotion bars on the nested CPCV paths (path Sharpe, drawdown, DSR, PBO, rank IC above "
    "the fit-free baseline) AND rank IC above the champion's as of the session; NaN fails "
    "closed. A refusal is a verdict: the run succeeds and the champion stays."
)


def sleeve_features(s: Settings, subset: list[str] | None, key: str) -> list[str]:
    """The feature columns a sleeve sees: `subset` (checked) or every feature."""
    names = feature_names(s.features.cross_sectional)
    if subset is None:
        return names
    unknown = [n for n in subset if n not in names]
    if unknown or not subset:
        raise ValueError(
            f"{key}: {unknown or 'an empty list'} — expected a non-empty list of feature "
            f"columns, e.g. {names[:4]} (every feature: {len(names)} columns)"
        )
    return list(subset)


def cpcv_train(
    kind: str,
    n_trials: Callable[[Settings], int | None] = lambda s: None,
    grid: Callable[[Settings], dict[str, list[Any]] | None] = lambda s: None,
    features: Callable[[Settings], list[str]] | None = None,
) -> Callable[..., Trained]:
    """The train function of a CPCV sleeve of estimator `kind` (the equities split layout)."""

    def columns(s: Settings) -> list[str]:
        if features is not None:
            return features(s)
        return sleeve_features(s, s.equities.features.get(kind), f"equities.features.{kind}")

    def train(inputs: Mapping[str, Any], as_of: dt.date, s: Settings, log: Any) -> Trained:
        snap = train_snapshot(
            inputs["features"],
            inputs["labels"],
            as_of=as_of,
            sessions=CALENDAR.sessions,
            feature_names=columns(s),
            cfg=s.equities,
            horizon=s.labels.horizon,
            seed=s.data.seed,
            kind=kind,
            n_trials=n_trials(s),
            grid=grid(s),
            progress=lambda n, v: log(f"{kind} trial {n}: CPCV rank IC {v:.4f}"),
        )
        return cpcv_trained(snap, s.equities)

    return train


def load_bundle(directory: Path) -> BundleScorer:
    """A downloaded bundle (ONNX + its own features.json) ready to score."""
    return BundleScorer.load(directory)


def score_features(
    model: BundleScorer, inputs: Mapping[str, Any], session: dt.date, s: Settings
) -> pl.DataFrame:
    """The session's feature rows scored by a CPCV bundle."""
    return model.score(collected(inputs["features"].filter(pl.col("date") == session)))


def collected(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """A lake input as a DataFrame (inputs passed by keyword arrive lazy)."""
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def equities_spec(kind: str) -> SleeveSpec:
    """The `equities_<kind>` sleeve."""
    return SleeveSpec(
        name=f"equities_{kind}",
        kind="alpha",
        group="equities",
        ins=TRAIN_INS,
        train=cpcv_train(kind),
        decide=lambda m, champ, s: decide(m, champ, s.equities.promotion),
        min_shadow=lambda s: s.equities.promotion.min_shadow_sessions,
        gate_description=GATE_TEXT,
        load=load_bundle,
        description=f"The {kind} cross-sectional alpha as of the session: CPCV with purging "
        "and embargo, Optuna over the grid, nested OOS governance metrics; registered as "
        f"`equities_{kind}` (alias `challenger`).",
        row_metrics=CPCV_SCALARS,
        kinds=frozenset({"lightgbm" if kind == "lgbm" else "catboost", "mlflow"}),
        score_ins=SCORE_INS,
        score=score_features,
    )
