"""Off-policy evaluation (OPE) of a sizing policy from the baseline book's logged
trajectories, and the promotion gate built on it. numpy only. The estimators live in
`ope_estimators.py`, FQE in `ope_fqe.py`; everything is re-exported here.

Estimators (all of the target policy π_e's expected discounted return from the logged episodes'
start states, over each episode's logged steps; every one a plain function of arrays):

- IS / WIS: trajectory importance sampling, plain and self-normalized (weighted);
- PDIS / WPDIS: per-decision importance sampling (Precup et al. 2000), plain and weighted;
- FQE: the direct method, V̂(s_0) of a Fitted Q Evaluation (`ope_fqe.py`);
- DR: per-decision doubly robust (Jiang & Li 2016; Thomas & Brunskill 2016),
  Σ_t γ^t [w_t (r_t − Q̂(s_t, a_t)) + w_{t−1} V̂(s_t)], unbiased for any Q̂;
- SNDR: self-normalized DR (Thomas & Brunskill's weighted DR), the same with w_t / Σ w_t.

Notation: ρ_t = π_e(a_t|s_t) / π_b(a_t|s_t), w_t = ρ_0 ⋯ ρ_t within an episode, w_{−1} = 1,
t the position within the episode (0 at its first logged row). Self-normalized estimators use
the fixed-horizon convention: an episode that has ended sits in an absorbing state with zero
reward and value and keeps its last weight, so step t's normalizer is Σ_i w_{i, min(t, T_i−1)}
(the usual one when all episodes have the same length; consistent because E_b[w_t] = 1). A
step at which every weight is exactly 0 (no episode followed π_e that far) contributes its
numerator, 0, instead of 0/0; NaN is never masked and propagates to every estimate.

Confidence intervals: percentile bootstrap over EPISODES (the dependence unit). Each
episode's contributions are computed once; a replicate is a vector of multinomial counts c,
so a linear estimate is c·x / Σc and a self-normalized one needs per-step sums c·x_t, done as
a few matrix products over bins of consecutive steps (`ope_estimators.py`). Q̂ is fitted
once on all the data and held fixed across replicates (the intervals do not include FQE's
own fitting noise; DR stays unbiased whatever Q̂ is).

The gate (`ope_gate`): the DR lower confidence bound must clear the behaviour policy's own
on-policy value + margin; NaN fails closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trademl.models.gate import Decision, check
from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.ope_estimators import (
    EpisodeLayout,
    Replicates,
    bootstrap_counts,
    bootstrap_replicates,
    cumulative_weights,
    dr_estimate,
    effective_sample_size,
    episode_layout,
    fqe_estimate,
    importance_ratios,
    is_estimate,
    on_policy_value,
    pdis_estimate,
    percentile_interval,
    sndr_estimate,
    wis_estimate,
    wpdis_estimate,
)
from trademl.models.offline_rl.ope_fqe import (
    FQEResult,
    QRegressor,
    RidgeQ,
    fitted_q_evaluation,
)

__all__ = [
    "ESTIMATORS",
    "EpisodeLayout",
    "FQEResult",
    "Interval",
    "OPEReport",
    "QRegressor",
    "Replicates",
    "RidgeQ",
    "bootstrap_counts",
    "bootstrap_replicates",
    "cumulative_weights",
    "dr_estimate",
    "effective_sample_size",
    "episode_layout",
    "evaluate",
    "fitted_q_evaluation",
    "fqe_estimate",
    "importance_ratios",
    "is_estimate",
    "on_policy_value",
    "ope_decision",
    "ope_gate",
    "pdis_estimate",
    "percentile_interval",
    "sndr_estimate",
    "wis_estimate",
    "wpdis_estimate",
]

ESTIMATORS = ("is", "wis", "pdis", "wpdis", "fqe", "dr", "sndr")


# -------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval."""

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class OPEReport:
    """What `evaluate` measured, for the gate, MLflow and the demo's verdict.

    estimates : per estimator in `ESTIMATORS`, the target policy's value with its interval.
    behaviour : the behaviour policy's own on-policy value (mean discounted return).
    vs_behaviour : per estimator, estimate − behaviour value with the PAIRED bootstrap
        interval (same resampled episodes for both; tighter than comparing two intervals).
    ess : Kish effective sample size of the episodes' final importance weights; ess_fraction
        = ess / n_episodes (near 0: the target policy is far from anything logged).
    fqe_converged, fqe_iterations : FQE's fit; a non-converged FQE's own estimate is NaN
        (DR still uses its Q as a control variate, valid for any Q).
    """

    estimates: dict[str, Interval]
    behaviour: Interval
    vs_behaviour: dict[str, Interval]
    n_episodes: int
    n_transitions: int
    ess: float
    ess_fraction: float
    gamma: float
    level: float
    n_boot: int
    seed: int
    fqe_converged: bool
    fqe_iterations: int
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self, prefix: str = "ope_") -> dict[str, float]:
        """Flat {name: value} for MLflow metrics / asset metadata."""
        out: dict[str, float] = {}
        for name, iv in [*self.estimates.items(), ("behaviour", self.behaviour)]:
            out[f"{prefix}{name}"] = iv.estimate
            out[f"{prefix}{name}_lo"] = iv.lower
            out[f"{prefix}{name}_hi"] = iv.upper
        for name, iv in self.vs_behaviour.items():
            out[f"{prefix}{name}_minus_behaviour"] = iv.estimate
            out[f"{prefix}{name}_minus_behaviour_lo"] = iv.lower
        out[f"{prefix}ess"] = self.ess
        out[f"{prefix}ess_fraction"] = self.ess_fraction
        out[f"{prefix}n_episodes"] = float(self.n_episodes)
        return out


def _check_probs(name: str, probs: np.ndarray, n: int, k: int) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (n, k):
        raise ValueError(f"OPE: {name} {p.shape} must be (N={n}, K={k})")
    ok = np.isfinite(p).all(axis=1)  # NaN rows are let through: they propagate, fail closed
    if (p[ok] < 0).any() or not np.allclose(p[ok].sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"OPE: {name} rows must be probabilities summing to 1")
    return p


def evaluate(
    data: Transitions,
    target_probs: np.ndarray,
    target_next_probs: np.ndarray,
    *,
    gamma: float,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    regressor: QRegressor | None = None,
    fqe_iter: int = 2000,
    fqe_tol: float = 1e-8,
) -> OPEReport:
    """Every estimator of the target policy's value on `data`, with episode-bootstrap
    intervals, and the behaviour policy's own value for comparison.

    Parameters
    ----------
    data : the logged transitions (behaviour probabilities included).
    target_probs, target_next_probs : (N, K) π_e(·|s_t) and π_e(·|s'_t).
    gamma : discount; n_boot, level, seed : bootstrap replicates, two-sided interval level,
        RNG seed (same inputs + seed → same report).
    regressor, fqe_iter, fqe_tol : FQE's regressor (None = `RidgeQ()`) and stopping rule.

    NaN in the rewards, observations or target probabilities propagates to the estimates and
    their bounds (the gate then fails closed).
    """
    n, k = data.n, data.n_actions
    pi = _check_probs("target_probs", target_probs, n, k)
    pi_next = _check_probs("target_next_probs", target_next_probs, n, k)
    fqe = fitted_q_evaluation(
        data.obs,
        data.action,
        data.reward,
        data.next_obs,
        data.done,
        pi_next,
        gamma=gamma,
        regressor=regressor,
        n_iter=fqe_iter,
        tol=fqe_tol,
    )
    rho = importance_ratios(pi, data.behaviour_probs, data.action)
    reps = bootstrap_replicates(
        data.reward,
        rho,
        fqe.q_taken(data.action),
        fqe.value(pi),
        data.episode,
        gamma=gamma,
        n_boot=n_boot,
        seed=seed,
    )
    point, boot = dict(reps.point), dict(reps.replicates)
    if not fqe.converged:
        point["fqe"] = math.nan
        boot["fqe"] = np.full(n_boot, math.nan)

    def interval(x: float, r: np.ndarray) -> Interval:
        lo, hi = percentile_interval(r, level)
        return Interval(float(x), lo, hi)

    base = point["behaviour"]
    m = int(reps.final_weights.shape[0])
    ess = effective_sample_size(reps.final_weights)
    return OPEReport(
        estimates={e: interval(point[e], boot[e]) for e in ESTIMATORS},
        behaviour=interval(base, boot["behaviour"]),
        vs_behaviour={
            e: interval(point[e] - base, boot[e] - boot["behaviour"]) for e in ESTIMATORS
        },
        n_episodes=m,
        n_transitions=n,
        ess=ess,
        ess_fraction=ess / m if m else math.nan,
        gamma=float(gamma),
        level=float(level),
        n_boot=int(n_boot),
        seed=int(seed),
        fqe_converged=bool(fqe.converged),
        fqe_iterations=int(fqe.n_iter),
    )


# ---------------------------------------------------------------------------------- gate


def ope_decision(
    report: OPEReport,
    *,
    margin: float,
    estimator: str = "dr",
    min_ess: float | None = None,
) -> Decision:
    """The OPE bars as a `Decision` (every check, passed or not).

    `<estimator>_lower_vs_behaviour`: the estimator's lower confidence bound ≥ the behaviour
    policy's on-policy value + margin (absolute, in discounted-return units). With `min_ess`,
    also `ess` ≥ min_ess. A NaN bound, behaviour value or ESS fails closed (`gate.check`).
    """
    if estimator not in report.estimates:
        raise ValueError(f"ope_gate: estimator {estimator!r} not in {sorted(report.estimates)}")
    base = report.behaviour.estimate
    checks = [
        check(
            f"{estimator}_lower_vs_behaviour",
            report.estimates[estimator].lower,
            base + margin,
            "≥",
        )
    ]
    if min_ess is not None:
        checks.append(check("ess", report.ess, min_ess, "≥"))
    return Decision(checks)


def ope_gate(
    report: OPEReport,
    *,
    margin: float,
    estimator: str = "dr",
    min_ess: float | None = None,
) -> tuple[bool, dict[str, str]]:
    """(passed, {failed bar: "name=value fails ≥ bar"}) — see `ope_decision`. Passes only when
    every bar passes; NaN anywhere in a bar fails closed."""
    decision = ope_decision(report, margin=margin, estimator=estimator, min_ess=min_ess)
    return decision.promote, {c.name: c.reason for c in decision.failed()}
