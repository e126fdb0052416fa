"""What one as-of training of any sleeve hands to the platform (logging, registry, gate).

Every sleeve's library returns a `Trained`: its metrics (the gate's inputs), the parameters to
record, how to save the model directory its scorer loads, the rows its data fingerprint
hashes, and — for alpha sleeves — its out-of-fold predictions with the split layout that made
them. `NotTrainable` is the answer when there is nothing honest to train on (e.g. a stacker
with fewer than two sleeves that passed their gates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from trademl.validation.layout import SplitLayout

__all__ = ["NotTrainable", "Trained"]


class NotTrainable(RuntimeError):
    """Nothing to train as of this session; the message says why (a verdict, not a crash)."""


@dataclass
class Trained:
    """One sleeve snapshot as of a session, ready to log, register and judge.

    Attributes
    ----------
    metrics : scalar metrics (gate inputs; finite numbers are logged to MLflow).
    params : parameters to record with the run.
    save : writes the model directory the sleeve's scorer loads.
    fingerprint : the rows whose hash identifies the training data.
    n_trials : configurations tried to get this model (for DSR deflation downstream).
    oof : alpha sleeves: out-of-fold rows (date, symbol, …, oof_path_<p>).
    layout : the split layout behind `oof`.
    figures : matplotlib figures to log (artifact path → figure).
    tables : frames to log as parquet (artifact path → frame).
    documents : JSON documents to log (artifact path → object).
    onnx : an ONNX graph also logged as an MLflow model (for the MLflow UI and other tools).
    info : non-numeric facts kept in the model row (e.g. the sleeves a stacker combines).
    """

    metrics: dict[str, Any]
    params: dict[str, Any]
    save: Callable[[Path], Any]
    fingerprint: pl.DataFrame
    n_trials: int = 1
    oof: pl.DataFrame | None = None
    layout: SplitLayout | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    onnx: bytes | None = None
    info: dict[str, str] = field(default_factory=dict)
