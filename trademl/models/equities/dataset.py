"""Training rows for the cross-sectional alpha: features joined to labels known as of d."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trademl.validation.cpcv import session_ordinals


@dataclass(frozen=True)
class AlphaDataset:
    """Rows (session, symbol) with features, the label value and its end session t1.

    `session` and `t1` are calendar ordinals, which CPCV uses to purge and embargo.
    """

    frame: pl.DataFrame
    feature_names: list[str]
    label: str
    session: np.ndarray
    t1: np.ndarray
    class_label: str | None = None

    @property
    def y(self) -> np.ndarray:
        return self.frame.get_column("y").to_numpy()

    @property
    def y_class(self) -> np.ndarray:
        """1.0 where the class label (e.g. the triple barrier) is positive, else 0.0."""
        if self.class_label is None:
            raise ValueError("this dataset was built without a class label")
        return (self.frame.get_column("y_class").to_numpy() > 0).astype(np.float64)

    @property
    def dates(self) -> np.ndarray:
        return self.frame.get_column("date").to_numpy()

    def __len__(self) -> int:
        return self.frame.height


def build_dataset(
    features: pl.DataFrame | pl.LazyFrame,
    labels: pl.DataFrame | pl.LazyFrame,
    *,
    label: str,
    as_of: dt.date,
    sessions: Sequence[dt.date],
    feature_names: Sequence[str],
    class_label: str | None = None,
    extra_columns: Sequence[str] = (),
) -> AlphaDataset:
    """Join features to the `label` rows whose window ended by `as_of` (honesty rule 3).

    Parameters
    ----------
    features:
        Wide features (date, symbol, …) as the `features` asset writes them.
    labels:
        Long labels (date, symbol, t1, name, value) as the `labels` asset writes them.
    sessions:
        The exchange calendar's sessions (for ordinals); must cover every date and t1.
    class_label:
        Also join this label (e.g. ``tb_label``) as ``y_class`` for classification; rows
        keep the later of the two ends as ``t1`` so purging covers both windows.
    extra_columns:
        Feature columns kept in the frame for evaluation (e.g. the market-vol regime) but not
        given to the model.
    """
    lab = (
        labels.lazy()
        .filter((pl.col("name") == label) & (pl.col("t1") <= as_of))
        .select("date", "symbol", "t1", pl.col("value").alias("y"))
    )
    extra = [c for c in extra_columns if c not in feature_names]
    feats = features.lazy().select("date", "symbol", *feature_names, *extra)
    if class_label is not None:
        cls = (
            labels.lazy()
            .filter((pl.col("name") == class_label) & (pl.col("t1") <= as_of))
            .select(
                "date", "symbol", pl.col("t1").alias("t1_class"), pl.col("value").alias("y_class")
            )
        )
        lab = (
            lab.join(cls, on=["date", "symbol"], how="inner")
            .with_columns(pl.max_horizontal("t1", "t1_class").alias("t1"))
            .drop("t1_class")
        )
    frame = (
        feats.join(lab, on=["date", "symbol"], how="inner")
        .filter(pl.col("y").is_not_null() & pl.col("y").is_finite())
        .sort("date", "symbol")
        .collect()
    )
    if frame.height == 0:
        raise ValueError(
            f"no training rows for label {label!r} as of {as_of}: "
            "are features and labels materialized for the training window?"
        )
    cal = list(sessions)
    return AlphaDataset(
        frame=frame,
        feature_names=list(feature_names),
        label=label,
        session=session_ordinals(frame.get_column("date"), cal),
        t1=session_ordinals(frame.get_column("t1"), cal),
        class_label=class_label,
    )
