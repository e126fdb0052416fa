"""FeatureStore: the ordered feature list and scaler stats a model was trained with.

Fit on training rows only (honesty rule 5), persist as ``features.json`` next to
the model, and transform serving rows with exactly the same order and stats
(rule 6: train as you serve).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Self

import numpy as np
import polars as pl

FORMAT_VERSION = 1
FILENAME = "features.json"


class FeatureOrderError(ValueError):
    """Serving columns do not match the trained feature list."""


class FeatureStore:
    """Scaler + ordered feature list, fit on a training frame.

    Parameters
    ----------
    features:
        Columns to use, in order; default: every float column of the fit frame
        except ``date`` and ``symbol``.
    scaler:
        ``standard`` (mean/std), ``robust`` (median/IQR·0.7413) or ``none``.
    clip:
        After scaling, clip to ±clip (None: no clipping).
    """

    def __init__(
        self,
        *,
        features: Sequence[str] | None = None,
        scaler: Literal["standard", "robust", "none"] = "standard",
        clip: float | None = 5.0,
    ) -> None:
        self.features = list(features) if features is not None else None
        self.scaler = scaler
        self.clip = clip

    def fit(self, frame: pl.DataFrame) -> Self:
        """Learn the feature order and per-feature center/scale from `frame`."""
        names = self.features or [
            c for c, t in frame.schema.items() if c not in ("date", "symbol") and t.is_float()
        ]
        self._require(frame.columns, names)
        return self.fit_array(_matrix(frame, names), names)

    def fit_array(self, x: np.ndarray, names: Sequence[str]) -> Self:
        """`fit` on a raw float matrix whose columns are `names` (NaN = missing)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise FeatureOrderError(f"matrix of shape {x.shape} does not have {len(names)} columns")
        centers, scales = np.zeros(len(names)), np.ones(len(names))
        valid = ~np.isnan(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            for j in range(len(names)):
                col = x[valid[:, j], j]
                if self.scaler == "none" or col.size == 0:
                    continue
                if self.scaler == "standard":
                    c = float(col.mean())
                    s = float(col.std(ddof=1)) if col.size > 1 else 0.0
                else:
                    q1, med, q3 = np.percentile(col, [25, 50, 75])
                    c, s = float(med), float((q3 - q1) * 0.7413)
                centers[j] = c
                scales[j] = s if s > 0 and math.isfinite(s) else 1.0
        self.feature_names_ = list(names)
        self.center_ = centers
        self.scale_ = scales
        self.n_fit_rows_ = int(x.shape[0])
        return self

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """Scaled float64 matrix [rows, features] in the trained order; nulls become NaN."""
        names = self._fitted()
        self._require(frame.columns, names)
        return self._scale(_matrix(frame, names))

    def transform_array(self, x: np.ndarray, columns: Sequence[str]) -> np.ndarray:
        """Scale a raw matrix whose `columns` must equal the trained order exactly."""
        names = self._fitted()
        if list(columns) != names:
            diff = next(
                (i for i, (a, b) in enumerate(zip(columns, names, strict=False)) if a != b),
                min(len(columns), len(names)),
            )
            raise FeatureOrderError(
                f"feature order differs from features.json at position {diff}: "
                f"got {list(columns)[diff : diff + 3]}, expected {names[diff : diff + 3]}"
            )
        return self._scale(np.asarray(x, dtype=np.float64))

    def _scale(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.center_) / self.scale_
        if self.clip is not None:
            z = np.clip(z, -self.clip, self.clip)
        return z

    def save(self, directory: str | Path) -> Path:
        """Write ``features.json`` (order, scaler, stats) into `directory`."""
        names = self._fitted()
        path = Path(directory) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": FORMAT_VERSION,
            "features": names,
            "scaler": self.scaler,
            "clip": self.clip,
            "center": [float(v) for v in self.center_],
            "scale": [float(v) for v in self.scale_],
            "n_fit_rows": self.n_fit_rows_,
        }
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> FeatureStore:
        """Read a FeatureStore saved by `save`."""
        path = Path(directory) / FILENAME
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no features.json (was the store saved?)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: format_version {doc.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        n = len(doc["features"])
        if len(doc["center"]) != n or len(doc["scale"]) != n:
            raise ValueError(f"{path}: center/scale lengths differ from the feature list ({n})")
        store = cls(features=doc["features"], scaler=doc["scaler"], clip=doc["clip"])
        store.feature_names_ = list(doc["features"])
        store.center_ = np.asarray(doc["center"], dtype=np.float64)
        store.scale_ = np.asarray(doc["scale"], dtype=np.float64)
        store.n_fit_rows_ = int(doc["n_fit_rows"])
        return store

    def _fitted(self) -> list[str]:
        if not hasattr(self, "feature_names_"):
            raise RuntimeError("FeatureStore is not fitted: call fit() or FeatureStore.load()")
        return self.feature_names_

    @staticmethod
    def _require(columns: Sequence[str], names: Sequence[str]) -> None:
        missing = [n for n in names if n not in columns]
        if missing:
            raise FeatureOrderError(f"frame lacks feature columns {missing}")


def _matrix(frame: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The named columns as a float64 matrix, nulls and NaN both as NaN."""
    return frame.select([pl.col(n).cast(pl.Float64).fill_null(np.nan) for n in names]).to_numpy()
