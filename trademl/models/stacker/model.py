"""A trained stacker: which sleeves it combines, how, and the one function that scores with it
(on out-of-fold predictions in training and on live sleeve scores in serving alike)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trademl.models.stacker.combiners import MonotoneGBM
from trademl.models.stacker.normalize import zscore_columns

__all__ = ["MODEL_FILE", "StackerModel"]

MODEL_FILE = "stacker.json"
GBM_FILE = "stacker_gbm.txt"


@dataclass
class StackerModel:
    """Weights ≥ 0 summing to 1 over `sleeves` (linear methods) or a monotone GBM."""

    sleeves: tuple[str, ...]
    method: str
    weights: np.ndarray | None = None
    gbm: MonotoneGBM | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def predict_matrix(self, z: np.ndarray) -> np.ndarray:
        """Combined score of normalized sleeve scores `z` [n, len(sleeves)]."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != len(self.sleeves):
            raise ValueError(
                f"stacker over {list(self.sleeves)} needs [n, {len(self.sleeves)}] scores, "
                f"got shape {z.shape}"
            )
        if self.gbm is not None:
            return self.gbm.predict(z) if z.shape[0] else np.empty(0)
        assert self.weights is not None
        return z @ self.weights

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """(date, symbol, score) from a frame with one raw score column per sleeve (named as
        the sleeve; null where a sleeve did not score the name), normalized per session."""
        missing = [s for s in self.sleeves if s not in frame.columns]
        if missing:
            raise ValueError(f"stacker needs scores of {missing}, the frame has {frame.columns}")
        z = zscore_columns(frame.select("date", "symbol", *self.sleeves), self.sleeves)
        pred = self.predict_matrix(z.select(self.sleeves).to_numpy())
        return z.select("date", "symbol").with_columns(pl.Series("score", pred))

    @property
    def weight_map(self) -> dict[str, float]:
        """{sleeve: weight} of a linear stacker (a GBM has none)."""
        if self.weights is None:
            return {}
        return {s: float(w) for s, w in zip(self.sleeves, self.weights, strict=True)}

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        doc = {
            "sleeves": list(self.sleeves),
            "method": self.method,
            "weights": None if self.weights is None else [float(w) for w in self.weights],
            "info": self.info,
        }
        (d / MODEL_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
        if self.gbm is not None:
            (d / GBM_FILE).write_text(self.gbm.text_)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> StackerModel:
        d = Path(directory)
        path = d / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no stacker in this directory")
        doc = json.loads(path.read_text())
        gbm = MonotoneGBM.from_text((d / GBM_FILE).read_text()) if (d / GBM_FILE).exists() else None
        weights = None if doc["weights"] is None else np.asarray(doc["weights"], dtype=np.float64)
        return cls(tuple(doc["sleeves"]), doc["method"], weights, gbm, doc.get("info", {}))
