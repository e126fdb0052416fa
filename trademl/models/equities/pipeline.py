"""One training snapshot as of a session: CPCV + HPO, governance, final fit, ONNX, bundle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from trademl.config import EquitiesConfig
from trademl.features.store import FeatureStore
from trademl.models.equities.dataset import AlphaDataset, build_dataset
from trademl.models.equities.estimators import make_estimator
from trademl.models.equities.onnx_export import to_onnx
from trademl.models.equities.regimes import REGIME_FEATURE, rank_ic_by_regime, session_regimes
from trademl.models.equities.train import HPOResult, governance, run_hpo, training_target
from trademl.models.equities.weights import time_decay_weights
from trademl.validation.cpcv import CombinatorialPurgedCV
from trademl.validation.metrics import ic_by_session


@dataclass
class Snapshot:
    """Everything one training run produced, ready to log and register."""

    as_of: dt.date
    kind: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    store: FeatureStore
    onnx_bytes: bytes
    native_bytes: bytes
    oof: pl.DataFrame
    rank_ic_per_session: pl.DataFrame
    n_rows: int
    hpo: HPOResult = field(repr=False, default_factory=lambda: HPOResult(kind="lgbm"))

    def training_cfg(self, cfg: EquitiesConfig) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "kind": self.kind,
            "params": self.params,
            "n_rows": self.n_rows,
            "n_trials": self.hpo.n_trials,
            "trials": self.hpo.trials,
            "config": cfg.model_dump(mode="json"),
        }


def train_snapshot(
    features: pl.DataFrame | pl.LazyFrame,
    labels: pl.DataFrame | pl.LazyFrame,
    *,
    as_of: dt.date,
    sessions: Sequence[dt.date],
    feature_names: Sequence[str],
    cfg: EquitiesConfig,
    horizon: int,
    seed: int = 7,
    grid: dict[str, list[Any]] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Snapshot:
    """Train the sleeve's model as of `as_of` on labels whose window ended by then."""
    # the market-vol regime is always there to evaluate per regime; a model input only on request
    model_features = [n for n in feature_names if n != REGIME_FEATURE or cfg.regime_feature]
    ds: AlphaDataset = build_dataset(
        features,
        labels,
        label=cfg.label,
        as_of=as_of,
        sessions=sessions,
        feature_names=model_features,
        class_label=cfg.class_label if cfg.objective == "classification" else None,
        extra_columns=[REGIME_FEATURE] if REGIME_FEATURE in feature_names else [],
    )
    cv = CombinatorialPurgedCV(
        n_groups=cfg.n_groups, n_test_groups=cfg.n_test_groups, embargo=cfg.embargo
    )
    base = {"n_estimators": cfg.n_estimators} if cfg.model == "lgbm" else {}
    if cfg.model == "catboost":
        base = {"iterations": cfg.n_estimators}
    if cfg.objective == "classification":
        base |= {"objective": "binary"} if cfg.model == "lgbm" else {"loss": "Logloss"}
    hpo = run_hpo(
        ds,
        cv,
        kind=cfg.model,
        n_trials=cfg.n_trials,
        base_params=base,
        grid=grid,
        half_life_months=cfg.half_life_months,
        horizon=horizon,
        spread_bps=cfg.spread_bps,
        seed=seed,
        objective=cfg.objective,
        progress=progress,
    )
    metrics = governance(
        ds,
        hpo,
        horizon=horizon,
        spread_bps=cfg.spread_bps,
        baseline_feature=cfg.baseline_feature,
        objective=cfg.objective,
    )
    # the final model sees every row known as of d, with the same transform it will serve with
    store = FeatureStore(features=ds.feature_names).fit(ds.frame)
    weights = time_decay_weights(ds.dates, half_life_months=cfg.half_life_months)
    model = make_estimator(cfg.model, hpo.best_params).fit(
        store.transform(ds.frame), training_target(ds, cfg.objective), sample_weight=weights
    )
    assert hpo.nested_cv is not None  # the out-of-sample paths the gate judged
    paths = hpo.nested_cv.oof
    oof_mean = hpo.nested_cv.mean_prediction
    oof = ds.frame.select("date", "symbol", "t1", "y").with_columns(
        pl.Series("oof", oof_mean),
        *[pl.Series(f"oof_path_{p}", paths[p]) for p in range(paths.shape[0])],
    )
    per_session_ic = ic_by_session(oof_mean, ds.y, ds.session)
    if REGIME_FEATURE in ds.frame.columns:  # is the alpha still there when markets are stressed?
        regimes = session_regimes(ds.frame, ds.session)
        metrics |= rank_ic_by_regime(per_session_ic, regimes)
    per_session = per_session_ic.with_columns(
        pl.Series("session", _dates_for(ds, np.unique(ds.session)))
    )
    return Snapshot(
        as_of=as_of,
        kind=cfg.model,
        metrics=metrics,
        params=hpo.best_params,
        store=store,
        onnx_bytes=to_onnx(model, len(ds.feature_names)),
        native_bytes=model.native_bytes(),
        oof=oof,
        rank_ic_per_session=per_session,
        n_rows=len(ds),
        hpo=hpo,
    )


def _dates_for(ds: AlphaDataset, ordinals: np.ndarray) -> pl.Series:
    """Session dates of sorted unique ordinals (the dataset is sorted by date)."""
    first = (
        ds.frame.select("date").with_columns(pl.Series("o", ds.session)).unique("o", keep="first")
    )
    lookup = dict(
        zip(first.get_column("o").to_list(), first.get_column("date").to_list(), strict=True)
    )
    return pl.Series([lookup[int(o)] for o in ordinals], dtype=pl.Date)
