"""Fitted Q Evaluation (FQE): the target policy's action values learned from logged
transitions by repeated regression, numpy only (serving and evaluation never import torch or
d3rlpy).

Each iteration regresses the Bellman target of the previous iterate onto (state, action),

    Q_{k+1}(s, a) ← r + γ (1 − done) Σ_a' π_e(a'|s') Q_k(s', a'),      Q_0 = 0,

with a pluggable regressor (`QRegressor`). The default `RidgeQ` is a closed-form ridge per
action on [z, z², 1], z the standardized observation: deterministic, fast, and — because a
ridge fit is linear in its targets — FQE with it reduces to an iteration θ ← b + M θ on the
(K·p) coefficients, built in one pass over the data (`fitted_q_evaluation` does this; the
generic path, refitting the regressor every iteration, gives the same numbers). With one-hot
state features and `alpha=0` it is the tabular Bellman backup on the empirical MDP, so it
converges to the exact policy value.

FQE on its own is the "direct method"; `ope.py` uses its Q and V as the control variate of the
doubly robust estimators, which stay unbiased whatever Q is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, Self

import numpy as np

__all__ = ["FQEResult", "QRegressor", "RidgeQ", "fitted_q_evaluation", "quadratic_features"]


class QRegressor(Protocol):
    """What FQE needs from a regressor: fit Q(s, a) to targets, predict all K actions."""

    def fit(self, obs: np.ndarray, action: np.ndarray, target: np.ndarray, n_actions: int) -> Self:
        """Fit Q(obs[i], action[i]) ≈ target[i]; returns the fitted regressor."""
        ...

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """(n, K) Q values of every action at each observation."""
        ...


def quadratic_features(obs: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """[z, z², 1] with z = (obs − mean) / scale: (n, 2d + 1) float64.

    Squares let a per-action linear model bend (a size that should fall as vol rises gives a
    value concave in vol); standardizing keeps the ridge penalty even across features.
    """
    z = (np.asarray(obs, dtype=np.float64) - mean) / scale
    return np.hstack([z, z * z, np.ones((z.shape[0], 1))])


def _solve(gram: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge normal equations; with alpha = 0 the minimum-norm least-squares solution (one-hot
    or duplicated features make the Gram matrix singular, an action never taken makes it 0)."""
    if alpha > 0:
        return np.linalg.solve(gram + alpha * np.eye(gram.shape[0]), rhs)
    return np.linalg.lstsq(gram, rhs, rcond=None)[0]


@dataclass
class RidgeQ:
    """Closed-form ridge regression of Q per action on fixed features.

    Parameters
    ----------
    alpha : ridge penalty (absolute, on the standardized features); 0 = least squares.
    features : obs (n, d) → design (n, p). None = `quadratic_features` standardized with the
        mean and scale of the observations it is fitted on (kept for `predict`).
    """

    alpha: float = 1e-3
    features: Callable[[np.ndarray], np.ndarray] | None = None
    coef_: np.ndarray | None = field(default=None, repr=False)  # (p, K)
    mean_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)

    def prepare(self, obs: np.ndarray) -> None:
        """Fix the default features' standardization on `obs` (the states Q is fitted on);
        no-op with custom `features`."""
        if self.features is None:
            x = np.asarray(obs, dtype=np.float64)
            self.mean_ = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
            sd = x.std(axis=0) if len(x) else np.ones(x.shape[1])
            self.scale_ = np.where(sd > 0, sd, 1.0)

    def design(self, obs: np.ndarray) -> np.ndarray:
        """The (n, p) float64 design matrix of `obs`."""
        if self.features is not None:
            return np.asarray(self.features(obs), dtype=np.float64)
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("RidgeQ: call prepare() or fit() before design()")
        return quadratic_features(obs, self.mean_, self.scale_)

    def fit(self, obs: np.ndarray, action: np.ndarray, target: np.ndarray, n_actions: int) -> Self:
        self.prepare(obs)
        phi = self.design(obs)
        coef = np.zeros((phi.shape[1], n_actions))
        for a in range(n_actions):
            rows = action == a
            pa = phi[rows]
            coef[:, a] = _solve(pa.T @ pa, pa.T @ target[rows], self.alpha)
        self.coef_ = coef
        return self

    def predict(self, obs: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("RidgeQ: predict() before fit()")
        return self.design(obs) @ self.coef_


@dataclass(frozen=True)
class FQEResult:
    """A fitted Q of the target policy on the logged rows.

    q, q_next : (N, K) Q(s_t, ·) and Q(s'_t, ·).
    n_iter : iterations run; converged : the last step moved less than the tolerance (a run
        that diverged or hit NaN is not converged); delta : that last step's size.
    regressor : the fitted regressor (predicts Q for new states).
    """

    q: np.ndarray
    q_next: np.ndarray
    n_iter: int
    converged: bool
    delta: float
    regressor: QRegressor

    def value(self, probs: np.ndarray) -> np.ndarray:
        """V(s_t) = Σ_a π(a|s_t) Q(s_t, a) for the (N, K) probabilities `probs` at s_t."""
        return (probs * self.q).sum(axis=1)

    def q_taken(self, action: np.ndarray) -> np.ndarray:
        """Q(s_t, a_t) of the logged actions."""
        return self.q[np.arange(self.q.shape[0]), action]


def _check_inputs(
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    done: np.ndarray,
    target_next_probs: np.ndarray,
) -> int:
    n = obs.shape[0]
    if target_next_probs.ndim != 2 or target_next_probs.shape[0] != n:
        raise ValueError(f"FQE: target_next_probs {target_next_probs.shape} must be (N={n}, K)")
    k = target_next_probs.shape[1]
    if action.shape != (n,) or reward.shape != (n,) or done.shape != (n,):
        raise ValueError("FQE: action, reward, done must be (N,)")
    if next_obs.shape != obs.shape:
        raise ValueError(f"FQE: next_obs {next_obs.shape} must match obs {obs.shape}")
    if n and ((action < 0) | (action >= k)).any():
        raise ValueError(f"FQE: actions must lie in [0, {k})")
    return k


def _fqe_ridge(
    reg: RidgeQ,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    cont: np.ndarray,
    pi_next: np.ndarray,
    n_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, int, bool, float]:
    """FQE with `RidgeQ` as the affine iteration θ ← b + M θ on the stacked (K, p) coefficients.

    The ridge fit of action a to targets y is θ_a = G_a⁻¹ Φ_aᵀ y_a with G_a = Φ_aᵀ Φ_a + αI; the
    target is y = r + Ψ θ with Ψ_i = γ(1 − d_i) [π_e(a'|s'_i) φ(s'_i)]_{a'}. So b_a = G_a⁻¹ Φ_aᵀ r_a
    and M_a = G_a⁻¹ Φ_aᵀ Ψ_a, computed once (N·K·p² flops); each iteration is then a (Kp)²
    matrix-vector product instead of a pass over the data. Returns Q at obs and next_obs
    (N, K) (the designs are built once), iterations, convergence and the last step.
    """
    reg.prepare(obs)
    phi, phi_next = reg.design(obs), reg.design(next_obs)
    k, p = pi_next.shape[1], phi.shape[1]
    b = np.zeros((k, p))
    m = np.zeros((k, p, k, p))
    for a in range(k):
        rows = np.flatnonzero(action == a)
        pa, pna = phi[rows], phi_next[rows]
        wa = cont[rows, None] * pi_next[rows]  # (n_a, K): γ(1 − d) π_e(a'|s')
        rhs = np.empty((p, 1 + k * p))
        rhs[:, 0] = pa.T @ reward[rows]
        for a2 in range(k):
            rhs[:, 1 + a2 * p : 1 + (a2 + 1) * p] = pa.T @ (wa[:, a2, None] * pna)
        sol = _solve(pa.T @ pa, rhs, reg.alpha)
        b[a] = sol[:, 0]
        m[a] = sol[:, 1:].reshape(p, k, p)
    b_flat, m_flat = b.ravel(), m.reshape(k * p, k * p)
    theta = np.zeros(k * p)
    delta, converged, it = float("inf"), False, 0
    for it in range(1, n_iter + 1):  # noqa: B007 - the count is reported
        new = b_flat + m_flat @ theta
        delta = float(np.max(np.abs(new - theta), initial=0.0))
        theta = new
        if not np.isfinite(delta):
            break
        if delta <= tol * max(1.0, float(np.max(np.abs(theta), initial=0.0))):
            converged = True
            break
    reg.coef_ = theta.reshape(k, p).T.copy()
    return phi @ reg.coef_, phi_next @ reg.coef_, it, converged, delta


def fitted_q_evaluation(
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    done: np.ndarray,
    target_next_probs: np.ndarray,
    *,
    gamma: float,
    regressor: QRegressor | None = None,
    n_iter: int = 2000,
    tol: float = 1e-8,
) -> FQEResult:
    """Fitted Q Evaluation of the target policy whose action probabilities at the next states
    are `target_next_probs` (N, K).

    Parameters
    ----------
    obs, next_obs : (N, d) states at the decision and at the next decision.
    action, reward, done : (N,) logged bucket index, reward, episode-end flag (no bootstrap
        past a done row; a time-limit truncation is not `done` and does bootstrap).
    gamma : discount.
    regressor : a `QRegressor`; None = `RidgeQ()`. A `RidgeQ` runs the exact closed-form
        coefficient iteration (same iterates as refitting it, far faster); any other
        regressor (subclasses of RidgeQ included) is refitted on the new targets every
        iteration.
    n_iter, tol : stop when an iteration moves the iterate (coefficients for `RidgeQ`, the
        Bellman targets otherwise) by ≤ tol × max(1, its size); with γ < 1 and a stable
        regressor this is geometric at rate ≈ γ, so 2000 iterations reach 1e-8 for γ ≤ 0.99.

    Returns
    -------
    FQEResult with Q at every logged state and next state. NaN in any input propagates into
    Q (never masked); `converged` is False when the iteration diverged or ran out.
    """
    obs = np.asarray(obs)
    next_obs = np.asarray(next_obs)
    action = np.asarray(action)
    reward = np.asarray(reward, dtype=np.float64)
    done = np.asarray(done)
    pi_next = np.asarray(target_next_probs, dtype=np.float64)
    k = _check_inputs(obs, action, reward, next_obs, done, pi_next)
    cont = gamma * (1.0 - done.astype(np.float64))
    reg: QRegressor = RidgeQ() if regressor is None else regressor
    if type(reg) is RidgeQ:  # a subclass may change fit/predict: refit it generically
        q, q_next, it, converged, delta = _fqe_ridge(
            reg, obs, action, reward, next_obs, cont, pi_next, n_iter, tol
        )
    else:
        y = reward.copy()
        delta, converged, it = float("inf"), False, 0
        for it in range(1, n_iter + 1):  # noqa: B007 - the count is reported
            reg = reg.fit(obs, action, y, k)
            y_new = reward + cont * (pi_next * reg.predict(next_obs)).sum(axis=1)
            delta = float(np.max(np.abs(y_new - y), initial=0.0))
            y = y_new
            if not np.isfinite(delta):
                break
            if delta <= tol * max(1.0, float(np.max(np.abs(y), initial=0.0))):
                converged = True
                break
        q, q_next = reg.predict(obs), reg.predict(next_obs)
    return FQEResult(
        q=q,
        q_next=q_next,
        n_iter=it,
        converged=converged,
        delta=delta,
        regressor=reg,
    )
