"""The router behind `alpha_scores`: which model output the book trades at a session.

In order, for each session:

1. ``stacker`` — the stacker champion as of the session, when every sleeve it needs scored
   the session;
2. ``stacker_subset`` — else the newest stacker promoted on or before the session whose
   sleeves all scored it (a stacker trained on the sleeves available);
3. ``fallback_weights`` — else the configured fixed weights over the sleeves that scored,
   renormalized to sum to 1 (no weights configured: equal weights; a sleeve not listed gets
   0; all listed weights 0 for the sleeves present: no scores, a flat book);
4. ``fit_free`` — with no sleeve champion at all, the fit-free fallback feature (or nothing
   when none is configured).

Scores are combined after the same per-session normalization the stacker was trained with
(`zscore_columns`); a sleeve that did not score a name counts as neutral (0) for it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trademl.models.stacker.model import StackerModel

__all__ = ["PATHS", "Routed", "StackerCandidate", "route_session", "wide_scores"]

PATHS = ("stacker", "stacker_subset", "fallback_weights", "fit_free")
SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "score": pl.Float64,
    "path": pl.String,
    "models": pl.String,
    "n_trials": pl.Int64,
}


@dataclass(frozen=True)
class StackerCandidate:
    """A promoted stacker version: the sleeves it combines, when it was promoted, its model."""

    version: str
    promoted: dt.date
    model: StackerModel
    n_trials: int

    @property
    def sleeves(self) -> tuple[str, ...]:
        return self.model.sleeves


@dataclass(frozen=True)
class Routed:
    """One session's served scores and how they were made."""

    frame: pl.DataFrame
    path: str
    models: dict[str, str]
    n_trials: int

    @property
    def description(self) -> str:
        names = ", ".join(f"{k}@{v}" for k, v in sorted(self.models.items())) or "no model"
        return f"{self.path}: {names}"


def wide_scores(session: dt.date, scores: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """(date, symbol, <sleeve>…) over the union of names any sleeve scored."""
    out: pl.DataFrame | None = None
    for name in sorted(scores):
        part = scores[name].select("symbol", pl.col("score").cast(pl.Float64).alias(name))
        out = part if out is None else out.join(part, on="symbol", how="full", coalesce=True)
    assert out is not None
    return out.with_columns(pl.lit(session).alias("date")).sort("symbol")


def _finish(frame: pl.DataFrame, path: str, models: dict[str, str], n_trials: int) -> Routed:
    out = frame.with_columns(
        pl.lit(path).alias("path"),
        pl.lit(json.dumps(models, sort_keys=True)).alias("models"),
        pl.lit(n_trials).alias("n_trials"),
    )
    return Routed(out.select(list(SCHEMA)).cast(SCHEMA), path, models, n_trials)


def route_session(
    session: dt.date,
    sleeve_scores: Mapping[str, pl.DataFrame],
    sleeve_versions: Mapping[str, str],
    sleeve_trials: Mapping[str, int],
    stackers: Sequence[StackerCandidate],
    *,
    stacker_enabled: bool,
    fallback_weights: Mapping[str, float],
    fit_free: pl.DataFrame | None,
    fit_free_name: str | None,
) -> Routed:
    """Serve one session.

    Parameters
    ----------
    sleeve_scores
        {sleeve: (symbol, score)} of the sleeves whose champion as of the session scored it
        (a sleeve absent or with no rows did not).
    stackers
        Promoted stacker versions dated on or before the session, newest first (the first is
        the champion as of the session).
    fit_free
        (symbol, score) of the fit-free feature, used only when no sleeve scored.
    """
    present = {k: v for k, v in sleeve_scores.items() if v.height}
    if not present:
        if fit_free is None or fit_free_name is None:
            return _finish(
                pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "score": pl.Float64}),
                "fit_free",
                {},
                1,
            )
        frame = fit_free.select(
            pl.lit(session).alias("date"), "symbol", pl.col("score").cast(pl.Float64)
        )
        return _finish(frame, "fit_free", {"fit_free": fit_free_name}, 1)
    wide = wide_scores(session, present)
    versions = {k: str(sleeve_versions[k]) for k in present}
    if stacker_enabled:
        for i, cand in enumerate(stackers):
            if set(cand.sleeves) <= set(present):
                path = "stacker" if i == 0 else "stacker_subset"
                models = {**{k: versions[k] for k in cand.sleeves}, "stacker": cand.version}
                return _finish(cand.model.score(wide), path, models, cand.n_trials)
    if fallback_weights:
        weights = {k: float(fallback_weights.get(k, 0.0)) for k in sorted(present)}
    else:
        weights = dict.fromkeys(sorted(present), 1.0)
    trials = sum(max(1, int(sleeve_trials.get(k, 1))) for k in present)
    total = sum(weights.values())
    if total <= 0:
        return _finish(
            wide.select("date", "symbol")
            .clear()
            .with_columns(pl.lit(None, pl.Float64).alias("score")),
            "fallback_weights",
            versions,
            trials,
        )
    fixed = StackerModel(
        tuple(weights), "fixed", weights=np.array([w / total for w in weights.values()])
    )
    return _finish(fixed.score(wide), "fallback_weights", versions, trials)
