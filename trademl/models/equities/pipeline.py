"""One training snapshot as of a session: CPCV + HPO, governance, final fit, ONNX, bundle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trademl.config import EquitiesConfig
from trademl.features.store import FeatureStore
from trademl.models.equities.bundle import save_bundle
from trademl.models.equities.dataset import AlphaDataset, build_dataset
from trademl.models.equities.estimators import make_estimator
from trademl.models.equities.onnx_export import to_onnx
from trademl.models.equities.regimes import REGIME_FEATURE, rank_ic_by_regime, session_regimes
from trademl.models.equities.train import HPOResult, governance, run_hpo, training_target
from trademl.models.equities.weights import time_decay_weights
from trademl.models.sleeve import Trained
from trademl.validation.cpcv import CombinatorialPurgedCV
from trademl.validation.layout import SplitLayout, cpcv_layout
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
    layout: SplitLayout | None = None

    def training_cfg(self, cfg: EquitiesConfig) -> dict[str, Any]:
        return {
            "layout": self.layout.to_dict() if self.layout else None,
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
    kind: str = "lgbm",
    n_trials: int | None = None,
    base_params: dict[str, Any] | None = None,
) -> Snapshot:
    """Train a CPCV sleeve's model of `kind` as of `as_of` on labels whose window ended by
    then; `cfg` holds the split layout every CPCV sleeve shares (window, label, groups,
    embargo). `n_trials` and `base_params` default to the equities budget of `kind`."""
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
        # the regime for per-regime evaluation, the fit-free baseline the gate compares with
        extra_columns=[
            c
            for c in (REGIME_FEATURE, cfg.baseline_feature)
            if c in _columns(features) and c not in model_features
        ],
    )
    cv = CombinatorialPurgedCV(
        n_groups=cfg.n_groups, n_test_groups=cfg.n_test_groups, embargo=cfg.embargo
    )
    objective = cfg.objective if kind != "linear" else "regression"
    if base_params is not None:
        base = dict(base_params)
    elif kind == "lgbm":
        base = {"n_estimators": cfg.n_estimators}
    elif kind == "catboost":
        base = {"iterations": cfg.n_estimators}
    else:
        base = {}
    if objective == "classification":
        base |= {"objective": "binary"} if kind == "lgbm" else {"loss": "Logloss"}
    hpo = run_hpo(
        ds,
        cv,
        kind=kind,
        n_trials=cfg.n_trials if n_trials is None else n_trials,
        base_params=base,
        grid=grid,
        half_life_months=cfg.half_life_months,
        horizon=horizon,
        spread_bps=cfg.spread_bps,
        seed=seed,
        objective=objective,
        progress=progress,
    )
    metrics = governance(
        ds,
        hpo,
        horizon=horizon,
        spread_bps=cfg.spread_bps,
        baseline_feature=cfg.baseline_feature,
        objective=objective,
    )
    # the final model sees every row known as of d, with the same transform it will serve with
    store = FeatureStore(features=ds.feature_names).fit(ds.frame)
    weights = time_decay_weights(ds.dates, half_life_months=cfg.half_life_months)
    model = make_estimator(kind, hpo.best_params).fit(
        store.transform(ds.frame), training_target(ds, objective), sample_weight=weights
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
        kind=kind,
        metrics=metrics,
        params=hpo.best_params,
        store=store,
        onnx_bytes=to_onnx(model, len(ds.feature_names)),
        native_bytes=model.native_bytes(),
        oof=oof,
        rank_ic_per_session=per_session,
        n_rows=len(ds),
        hpo=hpo,
        layout=cpcv_layout(cv, ds.dates, ds.session, ds.t1),
    )


def _columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    return frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns


def _dates_for(ds: AlphaDataset, ordinals: np.ndarray) -> pl.Series:
    """Session dates of sorted unique ordinals (the dataset is sorted by date)."""
    first = (
        ds.frame.select("date").with_columns(pl.Series("o", ds.session)).unique("o", keep="first")
    )
    lookup = dict(
        zip(first.get_column("o").to_list(), first.get_column("date").to_list(), strict=True)
    )
    return pl.Series([lookup[int(o)] for o in ordinals], dtype=pl.Date)


#: Scalar governance metrics every CPCV sleeve records (gate inputs and model-table columns).
CPCV_SCALARS = (
    "oos_rank_ic",
    "path_sharpe_median",
    "max_drawdown",
    "dsr",
    "pbo",
    "baseline_rank_ic",
    "hpo_best_rank_ic",
    "rank_ic_mean_high_vol",
    "rank_ic_mean_calm",
)


def cpcv_trained(snap: Snapshot, cfg: EquitiesConfig) -> Trained:
    """A CPCV snapshot as the platform's `Trained`: gate metrics, the bundle (ONNX + its
    features.json) as the model directory, the OOF with its layout, and the plots."""
    from trademl.models.equities.plots import (
        path_sharpe_hist,
        rank_ic_by_year,
        reliability_diagram,
    )

    metrics = {k: float(snap.metrics.get(k, float("nan"))) for k in CPCV_SCALARS}
    metrics |= {"n_rows": float(snap.n_rows), "n_trials": float(snap.hpo.n_trials)}
    figures = {
        "plots/rank_ic_by_year.png": rank_ic_by_year(snap.rank_ic_per_session),
        "plots/path_sharpe.png": path_sharpe_hist(snap.metrics["sharpe_by_path"]),
    }
    if "brier" in snap.metrics:  # classification on the triple-barrier label
        metrics["brier"] = float(snap.metrics["brier"])
        figures["plots/reliability.png"] = reliability_diagram(snap.metrics["reliability"])

    def save(directory: Path) -> Path:
        return save_bundle(
            directory,
            onnx_bytes=snap.onnx_bytes,
            native_bytes=snap.native_bytes,
            store=snap.store,
            training_cfg=snap.training_cfg(cfg),
            oof=snap.oof,
        )

    return Trained(
        metrics=metrics,
        params={"kind": snap.kind, "n_trials": snap.hpo.n_trials, **snap.params},
        save=save,
        fingerprint=snap.oof.select("date", "symbol", "y"),
        n_trials=snap.hpo.n_trials,
        oof=snap.oof,
        layout=snap.layout,
        figures=figures,
        documents={"trials.json": {"trials": snap.hpo.trials}},
        onnx=snap.onnx_bytes,
    )
