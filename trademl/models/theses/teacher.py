"""Teacher signals for supervised fine-tuning, from rules over the platform's features.

A claim holds when all its conditions hold; a condition compares a feature's value
(`scale: raw`) or its percentile rank among the session's names (`scale: rank`, 0 … 1) with a
threshold. The default claims: long-term momentum up / down (mom_126), short-term momentum up /
down (mom_5), high volatility (rvol_20 in the top fifth), deep drawdown (dd_252 in the bottom
fifth), liquid (dollar_vol_20 above the median), and divergence (short-term up while long-term
down). The structure teacher writes every section; the decision teacher is the quintile of the
forward return among the session's names (0 = strong_sell … 4 = strong_buy), known only once
the label window ended — so only training sessions whose labels ended by the as-of date teach.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = [
    "DEFAULT_RULES",
    "ClaimRule",
    "Condition",
    "check_rules",
    "claim_teacher",
    "decision_teacher",
    "evidence_of",
    "model_inputs",
    "rule_features",
]


@dataclass(frozen=True)
class Condition:
    feature: str
    op: str  # ">" or "<"
    value: float
    scale: str = "raw"  # "raw" or "rank"


@dataclass(frozen=True)
class ClaimRule:
    name: str
    when: tuple[Condition, ...]


DEFAULT_RULES: tuple[ClaimRule, ...] = (
    ClaimRule("long_momentum_up", (Condition("mom_126", ">", 0.0),)),
    ClaimRule("long_momentum_down", (Condition("mom_126", "<", 0.0),)),
    ClaimRule("short_momentum_up", (Condition("mom_5", ">", 0.0),)),
    ClaimRule("short_momentum_down", (Condition("mom_5", "<", 0.0),)),
    ClaimRule("high_volatility", (Condition("rvol_20", ">", 0.8, "rank"),)),
    ClaimRule("deep_drawdown", (Condition("dd_252", "<", 0.2, "rank"),)),
    ClaimRule("liquid", (Condition("dollar_vol_20", ">", 0.5, "rank"),)),
    ClaimRule(
        "divergence_short_up_long_down",
        (Condition("mom_5", ">", 0.0), Condition("mom_126", "<", 0.0)),
    ),
)


def rule_features(rules: Iterable[ClaimRule]) -> list[str]:
    """The features the rules read, sorted."""
    return sorted({c.feature for r in rules for c in r.when})


def check_rules(rules: Sequence[ClaimRule], available: Iterable[str]) -> None:
    """Refuse rules naming a feature the platform does not compute, or a bad operator."""
    have = set(available)
    for rule in rules:
        for c in rule.when:
            if c.feature not in have:
                raise ValueError(
                    f"theses claim {rule.name!r} reads feature {c.feature!r}, which the feature "
                    f"store does not compute; use one of {sorted(have)}"
                )
            if c.op not in (">", "<") or c.scale not in ("raw", "rank"):
                raise ValueError(
                    f"theses claim {rule.name!r}: op must be > or <, scale raw or rank "
                    f"(got {c.op!r}, {c.scale!r})"
                )


def _ranked(frame: pl.DataFrame, features: Sequence[str]) -> pl.DataFrame:
    """Each feature's percentile rank among the session's names (0 … 1; one name: 0.5)."""
    return frame.select(
        [
            (
                (pl.col(f).rank("average").over("date") - 1)
                / (pl.col(f).count().over("date") - 1).clip(lower_bound=1)
            )
            .fill_null(0.5)
            .alias(f)
            for f in features
        ]
    )


def claim_teacher(frame: pl.DataFrame, rules: Sequence[ClaimRule]) -> np.ndarray:
    """(rows × claims) 0/1: does each rule hold on each row (a missing value: no)."""
    feats = rule_features(rules)
    raw = frame.select(feats)
    rank = _ranked(frame.select("date", *feats), feats)
    out = np.ones((frame.height, len(rules)), dtype=np.float32)
    for j, rule in enumerate(rules):
        for c in rule.when:
            v = (rank if c.scale == "rank" else raw).get_column(c.feature).to_numpy()
            v = np.asarray(v, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                ok = (v > c.value) if c.op == ">" else (v < c.value)
            out[:, j] *= np.where(np.isfinite(v), ok, False)
    return out


def evidence_of(row: dict[str, float], rules: Sequence[ClaimRule]) -> dict[str, dict[str, float]]:
    """claim → the raw values of the features its rule reads (a thesis's evidence)."""
    return {
        r.name: {c.feature: float(row.get(c.feature, float("nan"))) for c in r.when} for r in rules
    }


def decision_teacher(fwd: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The forward return's quintile among its session's names (0 … 4)."""
    frame = pl.DataFrame({"date": dates, "y": np.asarray(fwd, dtype=np.float64)})
    q = frame.select(
        (
            (pl.col("y").rank("ordinal").over("date") - 1)
            * 5
            // pl.col("y").count().over("date").clip(lower_bound=1)
        )
        .clip(0, 4)
        .alias("q")
    )
    return q.get_column("q").to_numpy().astype(np.int64)


def model_inputs(frame: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    """(rows × features) float32: each feature z-scored among the session's names, missing
    values 0 — the same transform in training and serving."""
    z = frame.select(
        [
            (
                (pl.col(f) - pl.col(f).mean().over("date"))
                / pl.col(f).std().over("date").fill_null(1.0).clip(lower_bound=1e-12)
            )
            .fill_null(0.0)
            .fill_nan(0.0)
            .alias(f)
            for f in features
        ]
    )
    return z.to_numpy().astype(np.float32)
