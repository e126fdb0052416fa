"""Walk-forward evaluation of the thesis model and its gate.

Folds: `n_folds` spans of `train` sessions then `test` sessions, the last fold ending at the
last session; the training span drops its last `horizon` sessions (their labels would reach
into the test span). Per fold, SFT is fit on the training span, RFT starts from a copy of it;
both are judged on the test span by the decision-sign book: per session, long the names the
deterministic decision says buy, short those it says sell, equal weight, net of the linear
cost per traded name, on every `horizon`-th test session (non-overlapping forward returns),
Sharpe annualized by √(252 / horizon). The validity rate is the share of the test rows whose
deterministic thesis passes the schema.

Gate (fails closed): RFT's mean fold Sharpe beats SFT's by `margin`, RFT's is ≥ `min_sharpe`,
and the validity rate ≥ `min_validity`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from trademl.models.gate import Decision, check
from trademl.models.theses.model import DECISION_SIGNS, build_model
from trademl.models.theses.schema import valid_mask
from trademl.models.theses.train import ThesisParams, one_thread, rft, sft

__all__ = [
    "Folds",
    "WalkForward",
    "book_returns",
    "cpcv_paths",
    "thesis_decision",
    "walk_forward",
]


@dataclass(frozen=True)
class Folds:
    n_folds: int = 3
    train: int = 320
    test: int = 120
    horizon: int = 5


@dataclass(frozen=True)
class WalkForward:
    """Per-fold results, their means, and each row's out-of-sample expected decision sign
    (NaN outside the test spans) by SFT and by RFT, with the folds' training cutoffs."""

    folds: pl.DataFrame
    summary: dict[str, float]
    oof_sft: np.ndarray
    oof_rft: np.ndarray
    cutoffs: list[str]


def fold_spans(sessions: np.ndarray, folds: Folds) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training sessions, test sessions) of each fold, in time order."""
    days = np.unique(sessions)
    need = folds.train + folds.n_folds * folds.test
    if days.size < need:
        raise ValueError(
            f"theses walk-forward: {days.size} sessions, {need} needed for {folds.n_folds} folds "
            f"of {folds.train} training + {folds.test} test sessions; add history or lower them"
        )
    out = []
    for i in range(folds.n_folds):
        test_end = days.size - (folds.n_folds - 1 - i) * folds.test
        test = days[test_end - folds.test : test_end]
        train = days[test_end - folds.test - folds.train : test_end - folds.test - folds.horizon]
        out.append((train, test))
    return out


def book_returns(
    sign: np.ndarray, fwd: np.ndarray, dates: np.ndarray, horizon: int, cost_bps: float
) -> np.ndarray:
    """Per non-overlapping session: mean of sign × forward return over the traded names, net
    of the cost per traded name (0 when nothing is traded)."""
    days = np.unique(dates)[::horizon]
    out = []
    for d in days:
        sel = dates == d
        s, r = sign[sel], fwd[sel]
        traded = np.abs(s) > 0
        out.append(float((s[traded] * r[traded]).mean() - cost_bps * 1e-4) if traded.any() else 0.0)
    return np.asarray(out)


def _sharpe(r: np.ndarray, horizon: int) -> float:
    if r.size < 2 or r.std(ddof=1) == 0:
        return math.nan
    return float(r.mean() / r.std(ddof=1) * math.sqrt(252.0 / horizon))


def _judge(
    model: Any, x: np.ndarray, fwd: np.ndarray, dates: np.ndarray, folds: Folds, p: ThesisParams
):
    import torch

    pred = model.predict(torch.as_tensor(x, dtype=torch.float32))
    sign = DECISION_SIGNS[pred["decision"].numpy()]
    r = book_returns(sign, fwd, dates, folds.horizon, p.cost_bps)
    validity = valid_mask(pred["structure"].numpy(), pred["claims"].numpy()).mean()
    expected = pred["expected_sign"].numpy().astype(np.float64)
    return _sharpe(r, folds.horizon), float(r.mean()), float(validity), expected


def walk_forward(
    x: np.ndarray,
    fwd: np.ndarray,
    dates: np.ndarray,
    structure_t: np.ndarray,
    claims_t: np.ndarray,
    decision_t: np.ndarray,
    params: ThesisParams,
    folds: Folds,
) -> WalkForward:
    """Per fold: SFT and RFT Sharpe, mean return and validity on the test span; and their
    means (`sft_sharpe`, `rft_sharpe`, `rft_validity`, …)."""
    rows = []
    oof = {"sft": np.full(len(fwd), np.nan), "rft": np.full(len(fwd), np.nan)}
    cutoffs = []
    for i, (train, test) in enumerate(fold_spans(dates, folds)):
        tr, te = np.isin(dates, train), np.isin(dates, test)
        model = build_model(x.shape[1], claims_t.shape[1], seed=params.seed)
        with one_thread():
            sft(model, x[tr], structure_t[tr], claims_t[tr], decision_t[tr], params)
            tuned = copy.deepcopy(model)
            rft(tuned, x[tr], fwd[tr], claims_t[tr], params)
        row: dict[str, Any] = {"fold": i, "train_end": str(train[-1]), "test_end": str(test[-1])}
        cutoffs.append(str(train[-1]))
        for name, m in (("sft", model), ("rft", tuned)):
            sharpe, mean, validity, expected = _judge(m, x[te], fwd[te], dates[te], folds, params)
            row |= {f"{name}_sharpe": sharpe, f"{name}_mean": mean, f"{name}_validity": validity}
            oof[name][te] = expected
        rows.append(row)
    frame = pl.DataFrame(rows)
    summary = {
        c: float(np.nanmean(frame.get_column(c).to_numpy()))
        if np.isfinite(frame.get_column(c).to_numpy()).any()
        else math.nan
        for c in frame.columns
        if c.startswith(("sft_", "rft_"))
    }
    return WalkForward(frame, summary, oof["sft"], oof["rft"], cutoffs)


def thesis_decision(
    summary: dict[str, float], *, margin: float, min_sharpe: float, min_validity: float
) -> Decision:
    """The gate (module docstring)."""
    sft_sharpe = summary.get("sft_sharpe", math.nan)
    return Decision(
        [
            check("rft_vs_sft_sharpe", summary.get("rft_sharpe"), sft_sharpe + margin, ">"),
            check("rft_sharpe", summary.get("rft_sharpe"), min_sharpe, "≥"),
            check("rft_validity", summary.get("rft_validity"), min_validity, "≥"),
        ]
    )


def cpcv_paths(
    x: np.ndarray,
    fwd: np.ndarray,
    session: np.ndarray,
    t1: np.ndarray,
    structure_t: np.ndarray,
    claims_t: np.ndarray,
    decision_t: np.ndarray,
    params: ThesisParams,
    cv: Any,
) -> np.ndarray:
    """(paths × rows) out-of-fold expected decision signs on the CPCV layout `cv` (the one the
    CPCV sleeves share): each split trains SFT then RFT on its purged, embargoed training rows
    and predicts its test groups — what lets the stacker combine the thesis sleeve."""
    import torch

    preds = []
    for train, test in cv.split(session, t1):
        model = build_model(x.shape[1], claims_t.shape[1], seed=params.seed)
        with one_thread():
            sft(model, x[train], structure_t[train], claims_t[train], decision_t[train], params)
            rft(model, x[train], fwd[train], claims_t[train], params)
        out = model.predict(torch.as_tensor(x[test], dtype=torch.float32))
        preds.append(out["expected_sign"].numpy().astype(np.float64))
    return cv.assemble_paths(session, t1, preds)
