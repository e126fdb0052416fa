"""A trained snapshot on disk: ONNX + native model, features.json, config, OOF predictions.

Serving reads only the ONNX graph and the FeatureStore saved next to it (train as you
serve); it never imports lightgbm or catboost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trademl.features.store import FeatureStore
from trademl.models.equities.onnx_export import OnnxScorer

ONNX_FILE = "model.onnx"
NATIVE_FILE = "model.native"
CFG_FILE = "training_cfg.json"
FEATURE_LIST_FILE = "feature_list.json"
OOF_FILE = "oof.parquet"


def save_bundle(
    directory: str | Path,
    *,
    onnx_bytes: bytes,
    native_bytes: bytes,
    store: FeatureStore,
    training_cfg: dict[str, Any],
    oof: pl.DataFrame,
) -> Path:
    """Write every artifact of one training run into `directory` (created if missing)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / ONNX_FILE).write_bytes(onnx_bytes)
    (d / NATIVE_FILE).write_bytes(native_bytes)
    store.save(d)
    names = store.feature_names_
    (d / FEATURE_LIST_FILE).write_text(json.dumps(names, indent=2) + "\n")
    (d / CFG_FILE).write_text(
        json.dumps(training_cfg, indent=2, sort_keys=True, default=str) + "\n"
    )
    oof.write_parquet(d / OOF_FILE)
    return d


@dataclass
class BundleScorer:
    """Scores feature rows with a saved snapshot: its own scaler, its own order, ONNX only."""

    scorer: OnnxScorer
    store: FeatureStore
    directory: Path

    @classmethod
    def load(cls, directory: str | Path) -> BundleScorer:
        d = Path(directory)
        path = d / ONNX_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no ONNX model in this bundle")
        store = FeatureStore.load(d)
        listed = json.loads((d / FEATURE_LIST_FILE).read_text())
        if listed != store.feature_names_:
            raise ValueError(f"{d}: feature_list.json and features.json disagree on the order")
        return cls(OnnxScorer(path.read_bytes()), store, d)

    def score(self, features: pl.DataFrame) -> pl.DataFrame:
        """(date, symbol, score) for every row of `features`."""
        x = self.store.transform(features).astype(np.float32)
        pred = self.scorer.predict(x) if len(x) else np.empty(0)
        return features.select("date", "symbol").with_columns(
            pl.Series("score", np.asarray(pred, dtype=np.float64))
        )
