"""The thesis model as a platform sleeve: training as of a session (walk-forward SFT vs RFT,
then the served model on every known row), its out-of-fold expected decision signs (what the
stacker may combine), the saved model, and the scorer that serves scores and theses.

Only rows whose forward return is known by the as-of session teach (labels partitioned by
their end); the model is the same function in training and serving (`model_inputs`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trademl.config import Settings
from trademl.models.sleeve import NotTrainable, Trained
from trademl.models.theses.evaluate import Folds, cpcv_paths, thesis_decision, walk_forward
from trademl.models.theses.model import N_SECTIONS, build_model
from trademl.models.theses.schema import thesis_document, valid_mask, validate
from trademl.models.theses.teacher import (
    ClaimRule,
    Condition,
    claim_teacher,
    decision_teacher,
    evidence_of,
    model_inputs,
    rule_features,
)
from trademl.models.theses.train import ThesisParams, one_thread, rft, sft
from trademl.validation.cpcv import CombinatorialPurgedCV, session_ordinals
from trademl.validation.evaluation import paired_rank_ic_bootstrap
from trademl.validation.layout import cpcv_layout, walk_forward_layout

__all__ = ["ThesisScorer", "rules_of", "thesis_inputs", "train_thesis"]

#: Inputs beside the claims' features when `theses.features` is None.
EXTRA_FEATURES = ("mom_20", "mom_60", "bb_pos_20", "beta_60", "rvol_60")
WEIGHTS, META = "thesis.pt", "thesis.json"


def rules_of(s: Settings) -> tuple[ClaimRule, ...]:
    return tuple(
        ClaimRule(c.name, tuple(Condition(w.feature, w.op, w.value, w.scale) for w in c.when))
        for c in s.theses.claims
    )


def thesis_inputs(s: Settings) -> list[str]:
    """The model's input features, in order."""
    if s.theses.features is not None:
        return list(s.theses.features)
    return sorted(set(rule_features(rules_of(s))) | set(EXTRA_FEATURES))


def _params(s: Settings) -> ThesisParams:
    t = s.theses
    return ThesisParams(
        lr=t.lr,
        sft_epochs=t.sft_epochs,
        rft_epochs=t.rft_epochs,
        rft_lr=t.rft_lr,
        batch_size=t.batch_size,
        entropy=t.entropy,
        w_valid=t.w_valid,
        w_return=t.w_return,
        w_claims=t.w_claims,
        cost_bps=s.costs.fee_bps + s.costs.half_spread_bps,
        seed=t.seed,
    )


def training_rows(
    features: pl.DataFrame, labels: pl.DataFrame, as_of: dt.date, target: str, cols: list[str]
) -> pl.DataFrame:
    """Feature rows joined with the `target` known by `as_of` (label t1 ≤ as_of)."""
    missing = [c for c in cols if c not in features.columns]
    if missing:
        raise ValueError(f"thesis: features lack columns {missing}")
    y = labels.filter((pl.col("name") == target) & (pl.col("t1") <= as_of)).select(
        "date", "symbol", "t1", pl.col("value").alias("y")
    )
    return (
        features.select("date", "symbol", *cols)
        .join(y, on=["date", "symbol"], how="inner")
        .filter(pl.col("y").is_finite())
        .sort("date", "symbol")
    )


def _fold_figure(folds: pl.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(folds.height)
    ax.bar(x - 0.2, folds.get_column("sft_sharpe").fill_nan(0.0).to_numpy(), 0.4, label="SFT")
    ax.bar(x + 0.2, folds.get_column("rft_sharpe").fill_nan(0.0).to_numpy(), 0.4, label="RFT")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xticks(x, [f"fold {i}" for i in x])
    ax.set_ylabel("decision-sign book Sharpe (test)")
    ax.set_title("Thesis model: SFT vs RFT out of sample")
    ax.legend()
    fig.tight_layout()
    return fig


def train_thesis(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    as_of: dt.date,
    s: Settings,
    log: Any,
    sessions: Sequence[dt.date] | None = None,
) -> Trained:
    """The thesis snapshot as of `as_of` (module docstring). Its OOF is the walk-forward's
    test predictions — or, when `thesis` is in `stacker.sleeves` (and the exchange `sessions`
    are given), every row predicted on the CPCV layout the CPCV sleeves share (equities
    groups, test groups, embargo), so the stacker can combine it."""
    t, rules, cols = s.theses, rules_of(s), thesis_inputs(s)
    rows = training_rows(features, labels, as_of, f"fwd_ret_{s.labels.horizon}", cols)
    folds = Folds(t.n_folds, t.fold_train, t.fold_test, s.labels.horizon)
    n_sessions = rows.get_column("date").n_unique()
    need = folds.train + folds.n_folds * folds.test
    if n_sessions < need:
        raise NotTrainable(
            f"{n_sessions} sessions with known labels by {as_of}, {need} needed for "
            f"{folds.n_folds} folds of {folds.train} + {folds.test}; lower theses.fold_train / "
            "fold_test or train later"
        )
    x = model_inputs(rows, cols)
    fwd = rows.get_column("y").to_numpy()
    dates = rows.get_column("date").to_numpy()
    claims_t = claim_teacher(rows, rules)
    decision_t = decision_teacher(fwd, dates)
    structure_t = np.ones((len(fwd), N_SECTIONS), dtype=np.float32)
    params = _params(s)
    wf = walk_forward(x, fwd, dates, structure_t, claims_t, decision_t, params, folds)
    log(f"thesis as of {as_of}: walk-forward {wf.summary}")
    model = build_model(len(cols), len(rules), seed=params.seed)
    with one_thread():
        losses = sft(model, x, structure_t, claims_t, decision_t, params)
        losses |= rft(model, x, fwd, claims_t, params)
    import torch

    pred = model.predict(torch.as_tensor(x))
    asserted = pred["claims"].numpy() > 0.5
    metrics: dict[str, Any] = {
        # share of the claims it asserts whose rule holds (the claims head vs its teacher)
        "train_claim_precision": float((claims_t[asserted] > 0.5).mean())
        if asserted.any()
        else float("nan"),
        **wf.summary,
        **losses,
        "train_validity": float(
            valid_mask(pred["structure"].numpy(), pred["claims"].numpy()).mean()
        ),
        "n_rows": float(len(fwd)),
        "n_sessions": float(n_sessions),
    }
    tested = np.isfinite(wf.oof_rft)
    if np.unique(dates[tested]).size >= 2:
        ci = paired_rank_ic_bootstrap(
            wf.oof_rft[tested],
            wf.oof_sft[tested],
            fwd[tested],
            dates[tested],
            n_boot=s.evaluation.n_boot,
            level=s.evaluation.level,
            seed=s.evaluation.seed,
        )
        metrics |= {
            "rft_vs_sft_rank_ic": ci.diff,
            "rft_vs_sft_rank_ic_lo": ci.lo,
            "rft_vs_sft_rank_ic_hi": ci.hi,
        }
    if sessions is not None and "thesis" in s.stacker.sleeves:
        e = s.equities
        cv = CombinatorialPurgedCV(
            n_groups=e.n_groups, n_test_groups=e.n_test_groups, embargo=e.embargo
        )
        session = session_ordinals(rows.get_column("date"), sessions)
        t1 = session_ordinals(rows.get_column("t1"), sessions)
        log(f"thesis as of {as_of}: CPCV out-of-fold for the stacker ({cv})")
        paths = cpcv_paths(x, fwd, session, t1, structure_t, claims_t, decision_t, params, cv)
        oof = rows.select("date", "symbol", "t1", "y").with_columns(
            *[pl.Series(f"oof_path_{p}", paths[p]) for p in range(paths.shape[0])]
        )
        layout = cpcv_layout(cv, rows.get_column("date").to_numpy(), session, t1)
    else:
        oof = rows.filter(pl.Series(tested)).select(
            "date", "symbol", "y", pl.Series("oof_path_0", wf.oof_rft[tested])
        )
        layout = walk_forward_layout(oof.get_column("date").to_list(), wf.cutoffs)
    meta = {
        "features": cols,
        "claims": [{"name": r.name, "when": [c.__dict__ for c in r.when]} for r in rules],
        "as_of": as_of.isoformat(),
    }

    def save(directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), directory / WEIGHTS)
        (directory / META).write_text(json.dumps(meta, indent=1))

    return Trained(
        metrics=metrics,
        params={"features": ",".join(cols), "n_claims": len(rules), **params.__dict__},
        save=save,
        fingerprint=rows.select("date", "symbol", "y"),
        oof=oof,
        layout=layout,
        figures={"plots/thesis_folds.png": _fold_figure(wf.folds)},
        tables={"thesis/folds.parquet": wf.folds},
    )


def decide(metrics: dict[str, Any], champion: dict[str, Any] | None, s: Settings) -> Any:
    """The gate: RFT beats SFT out of sample, its Sharpe and the validity rate hold."""
    p = s.theses.promotion
    return thesis_decision(
        metrics, margin=p.margin, min_sharpe=p.min_sharpe, min_validity=p.min_validity
    )


@dataclass
class ThesisScorer:
    """A downloaded thesis model: scores (the decision head's expected sign) and theses."""

    model: Any
    features: list[str]
    rules: tuple[ClaimRule, ...]

    @classmethod
    def load(cls, directory: Path) -> ThesisScorer:
        import torch

        meta = json.loads((directory / META).read_text())
        rules = tuple(
            ClaimRule(r["name"], tuple(Condition(**c) for c in r["when"])) for r in meta["claims"]
        )
        model = build_model(len(meta["features"]), len(rules))
        model.load_state_dict(torch.load(directory / WEIGHTS, weights_only=True))
        model.eval()
        return cls(model, list(meta["features"]), rules)

    def _predict(self, frame: pl.DataFrame) -> dict[str, Any]:
        import torch

        return self.model.predict(torch.as_tensor(model_inputs(frame, self.features)))

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """(date, symbol, score = expected decision sign) of the feature rows."""
        if not frame.height:
            return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "score": pl.Float64})
        pred = self._predict(frame)
        return frame.select("date", "symbol").with_columns(
            pl.Series("score", pred["expected_sign"].numpy().astype(np.float64))
        )

    def theses(self, frame: pl.DataFrame, version: str) -> pl.DataFrame:
        """(date, symbol, decision, confidence, valid, error, thesis JSON) of the feature rows;
        every thesis is validated against the schema."""
        pred = self._predict(frame)
        truth = claim_teacher(frame, self.rules) if frame.height else np.zeros((0, 0))
        names = [r.name for r in self.rules]
        out = []
        for i, row in enumerate(frame.iter_rows(named=True)):
            doc = thesis_document(
                symbol=row["symbol"],
                date=row["date"].isoformat(),
                structure=pred["structure"][i].tolist(),
                claims=pred["claims"][i].tolist(),
                decision=int(pred["decision"][i]),
                confidence=float(pred["confidence"][i]),
                claim_names=[r.name for r in self.rules],
                evidence=evidence_of(row, self.rules),
                model_version=version,
                holds=dict(zip(names, truth[i] > 0.5, strict=True)),
            )
            error = ""
            try:
                validate(doc)
            except ValueError as exc:
                error = str(exc)
            out.append(
                {
                    "date": row["date"],
                    "symbol": row["symbol"],
                    "decision": doc["decision"],
                    "confidence": doc["confidence"],
                    "valid": not error,
                    "error": error,
                    "thesis": json.dumps(doc, sort_keys=True),
                    "model_version": version,
                }
            )
        return pl.DataFrame(out, schema=THESES_SCHEMA)


THESES_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "decision": pl.String,
    "confidence": pl.Float64,
    "valid": pl.Boolean,
    "error": pl.String,
    "thesis": pl.String,
    "model_version": pl.String,
}
