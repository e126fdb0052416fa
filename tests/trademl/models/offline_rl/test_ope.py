"""Off-policy evaluation: FQE against the exact tabular value, every estimator against
hand-worked arithmetic, DR's unbiasedness on a bandit with a known truth, the episode
bootstrap against explicit resampling, and the gate on a synthetic sizing MDP."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from trademl.models.offline_rl import ope, ope_estimators
from trademl.models.offline_rl.data import Transitions

BUCKETS = (0.0, 0.5, 1.0, 1.5)
Policy = Callable[[np.ndarray], np.ndarray]  # states (n, d) → bucket probabilities (n, K)


# --------------------------------------------------------------------------- FQE, tabular

# 4 states, 2 actions; outcomes are next states 0-3 or 4 = episode ends. Probabilities are
# multiples of 1/4 so a dataset holding each (s, a, outcome) 4·P times IS the MDP.
_P = np.array(
    [
        [[0.50, 0.25, 0.00, 0.00, 0.25], [0.00, 0.00, 0.75, 0.25, 0.00]],
        [[0.25, 0.25, 0.25, 0.25, 0.00], [0.00, 0.50, 0.00, 0.00, 0.50]],
        [[0.00, 0.00, 1.00, 0.00, 0.00], [0.25, 0.00, 0.00, 0.75, 0.00]],
        [[0.00, 0.25, 0.25, 0.00, 0.50], [1.00, 0.00, 0.00, 0.00, 0.00]],
    ]
)
_R = np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7], [0.0, 1.5]])
_PI = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])  # target π_e(a|s)


def _tabular_data() -> dict[str, np.ndarray]:
    obs, act, rew, nxt, done, pi_next = [], [], [], [], [], []
    eye = np.eye(4)
    for s in range(4):
        for a in range(2):
            for out, p in enumerate(_P[s, a]):
                for _ in range(round(4 * p)):
                    obs.append(eye[s])
                    act.append(a)
                    rew.append(_R[s, a])
                    ended = out == 4
                    nxt.append(np.zeros(4) if ended else eye[out])
                    done.append(ended)
                    # at a done row the next state does not exist: any probabilities do
                    pi_next.append(np.array([0.5, 0.5]) if ended else _PI[out])
    return {
        "obs": np.array(obs),
        "action": np.array(act),
        "reward": np.array(rew),
        "next_obs": np.array(nxt),
        "done": np.array(done),
        "target_next_probs": np.array(pi_next),
    }


def _exact_q(gamma: float) -> np.ndarray:
    """Q^π by linear algebra: V = (I − γ P_π)⁻¹ r_π on the 4 live states, then Q = r + γ P V."""
    p_live = _P[:, :, :4]  # the terminal outcome has value 0
    p_pi = np.einsum("sa,sat->st", _PI, p_live)
    r_pi = (_PI * _R).sum(axis=1)
    v = np.linalg.solve(np.eye(4) - gamma * p_pi, r_pi)
    return _R + gamma * p_live @ v


class _TabularMean:
    """A non-RidgeQ regressor (generic FQE path): the mean target per (one-hot state, a)."""

    def fit(
        self, obs: np.ndarray, action: np.ndarray, target: np.ndarray, n_actions: int
    ) -> _TabularMean:
        s = obs.argmax(axis=1)
        self.table = np.zeros((obs.shape[1], n_actions))
        for a in range(n_actions):
            for k in range(obs.shape[1]):
                rows = (s == k) & (action == a)
                if rows.any():
                    self.table[k, a] = target[rows].mean()
        return self

    def predict(self, obs: np.ndarray) -> np.ndarray:
        return obs @ self.table  # zeros (terminal) predict 0


@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_fqe_converges_to_exact_tabular_value(gamma: float) -> None:
    d = _tabular_data()
    # one-hot + an intercept: the zero next state of a done row predicts the intercept, so
    # ignoring `done` would leak value past the end of an episode
    features = lambda x: np.hstack([x, np.ones((x.shape[0], 1))])  # noqa: E731
    fit = ope.fitted_q_evaluation(
        **d, gamma=gamma, regressor=ope.RidgeQ(alpha=0.0, features=features), tol=1e-12
    )
    exact = _exact_q(gamma)
    state = d["obs"].argmax(axis=1)
    assert fit.converged
    np.testing.assert_allclose(fit.q, exact[state], rtol=0, atol=1e-9)
    # the value of the start states under π_e, as the DM estimate reports it
    np.testing.assert_allclose(fit.value(_PI[state]), (exact * _PI).sum(axis=1)[state], atol=1e-9)
    # the generic path (refit every iteration) reaches the same fixed point
    generic = ope.fitted_q_evaluation(**d, gamma=gamma, regressor=_TabularMean(), tol=1e-12)
    assert generic.converged
    np.testing.assert_allclose(generic.q, exact[state], atol=1e-9)


def test_fqe_ridge_fast_path_equals_refitting_the_ridge() -> None:
    """The closed-form coefficient iteration gives the same Q as refitting RidgeQ on the
    Bellman targets every iteration (what FQE is by definition)."""

    class Refit(ope.RidgeQ):
        pass  # same regressor, but not recognized by the fast path's `type(...) is` check

    rng = np.random.default_rng(3)
    n = 600
    obs = rng.normal(size=(n, 2))
    nxt = 0.7 * obs + 0.5 * rng.normal(size=(n, 2))
    done = rng.random(n) < 0.1
    nxt[done] = 0
    act = rng.integers(0, 3, n)
    rew = obs[:, 0] * (act - 1) + 0.1 * rng.normal(size=n)
    pi_next = rng.dirichlet(np.ones(3), size=n)
    kw = {"gamma": 0.8, "n_iter": 400, "tol": 1e-12}
    fast = ope.fitted_q_evaluation(obs, act, rew, nxt, done, pi_next, **kw)
    slow = ope.fitted_q_evaluation(obs, act, rew, nxt, done, pi_next, regressor=Refit(), **kw)
    assert fast.converged and slow.converged
    assert fast.n_iter < 400
    np.testing.assert_allclose(fast.q, slow.q, atol=1e-8)
    np.testing.assert_allclose(fast.q_next, slow.q_next, atol=1e-8)


# ------------------------------------------------------------ hand-computed, two episodes

# Episode A (id 7): 2 steps; episode B (id 3): 1 step. K = 2, γ = 0.5.
#   A0: π_b = (0.5, 0.5), π_e = (0.75, 0.25), a = 0 → ρ = 0.75/0.5 = 1.5, r = 1
#   A1: π_b = (0.8, 0.2), π_e = (0.6, 0.4),   a = 1 → ρ = 0.4/0.2  = 2,   r = 2
#   B0: π_b = (0.5, 0.5), π_e = (0.75, 0.25), a = 1 → ρ = 0.25/0.5 = 0.5, r = 4
# Cumulative weights: w_A0 = 1.5, w_A1 = 1.5·2 = 3, w_B0 = 0.5.
# Returns: G_A = 1 + 0.5·2 = 2, G_B = 4.
# A model: Q̂(s, a_t) = 1.2, 1.8, 3.0 and V̂(s) = 1.0, 2.1, 2.5 for A0, A1, B0.
_EP = np.array([7, 7, 3])
_ACT = np.array([0, 1, 1])
_PB = np.array([[0.5, 0.5], [0.8, 0.2], [0.5, 0.5]])
_PE = np.array([[0.75, 0.25], [0.6, 0.4], [0.75, 0.25]])
_REW = np.array([1.0, 2.0, 4.0])
_Q = np.array([1.2, 1.8, 3.0])
_V = np.array([1.0, 2.1, 2.5])
_G = 0.5

# IS    = (w_A1·G_A + w_B0·G_B) / 2 = (3·2 + 0.5·4) / 2 = 8/2 = 4
# WIS   = (3·2 + 0.5·4) / (3 + 0.5) = 8 / 3.5 = 16/7
# PDIS  = ([1.5·1 + 0.5·3·2] + [0.5·4]) / 2 = (4.5 + 2) / 2 = 3.25
# WPDIS = step 0: (1.5·1 + 0.5·4) / (1.5 + 0.5) = 3.5/2 = 1.75
#         step 1: 3·2 / (3 + 0.5 [B has ended, keeps its weight]) = 6/3.5 = 12/7
#         1.75 + 0.5·12/7 = 1.75 + 6/7
# DR    = A: [1.5(1 − 1.2) + 1.0] + 0.5[3(2 − 1.8) + 1.5·2.1] = 0.7 + 0.5·3.75 = 2.575
#         B: 0.5(4 − 3) + 2.5 = 3.0;  (2.575 + 3.0) / 2 = 2.7875
# SNDR  = step 0: [1.5(−0.2) + 0.5(1)] / 2 + (1.0 + 2.5) / 2 = 0.1 + 1.75 = 1.85
#         step 1: 3(0.2) / 3.5 + 1.5·2.1 / 2 = 0.6/3.5 + 1.575
#         1.85 + 0.5(0.6/3.5 + 1.575) = 2.6375 + 0.3/3.5
# FQE   = (V̂_A0 + V̂_B0) / 2 = 1.75;  behaviour = (G_A + G_B) / 2 = 3
_HAND = {
    "is": 4.0,
    "wis": 16 / 7,
    "pdis": 3.25,
    "wpdis": 1.75 + 6 / 7,
    "dr": 2.7875,
    "sndr": 2.6375 + 0.3 / 3.5,
    "fqe": 1.75,
    "behaviour": 3.0,
}


def test_estimators_match_hand_computed_two_episode_example() -> None:
    rho = ope.importance_ratios(_PE, _PB, _ACT)
    np.testing.assert_allclose(rho, [1.5, 2.0, 0.5])
    np.testing.assert_allclose(ope.cumulative_weights(rho, _EP), [1.5, 3.0, 0.5])
    got = {
        "is": ope.is_estimate(_REW, rho, _EP, gamma=_G),
        "wis": ope.wis_estimate(_REW, rho, _EP, gamma=_G),
        "pdis": ope.pdis_estimate(_REW, rho, _EP, gamma=_G),
        "wpdis": ope.wpdis_estimate(_REW, rho, _EP, gamma=_G),
        "dr": ope.dr_estimate(_REW, rho, _Q, _V, _EP, gamma=_G),
        "sndr": ope.sndr_estimate(_REW, rho, _Q, _V, _EP, gamma=_G),
        "fqe": ope.fqe_estimate(_V, _EP),
        "behaviour": ope.on_policy_value(_REW, _EP, gamma=_G),
    }
    for name, value in _HAND.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    # the bootstrap's point estimates are the same numbers
    reps = ope.bootstrap_replicates(_REW, rho, _Q, _V, _EP, gamma=_G, n_boot=5)
    for name, value in _HAND.items():
        assert reps.point[name] == pytest.approx(value, abs=1e-12), name
    assert ope.effective_sample_size([3.0, 0.5]) == pytest.approx(3.5**2 / 9.25)


def test_episodes_must_be_contiguous() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        ope.episode_layout(np.array([1, 1, 2, 1]))


# ------------------------------------------------------------------ DR is unbiased (bandit)

_F = np.array(
    [[1.0, 0.2, -0.5], [0.0, 0.8, 0.3], [-0.4, 0.1, 1.2], [0.6, -0.2, 0.0], [0.2, 0.9, 0.4]]
)
_X_PB = np.array(
    [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25], [0.1, 0.3, 0.6]]
)
_X_PE = np.array(
    [[0.1, 0.3, 0.6], [0.7, 0.1, 0.2], [0.2, 0.2, 0.6], [0.8, 0.1, 0.1], [0.3, 0.6, 0.1]]
)


def _bandit(seed: int, n: int) -> dict[str, np.ndarray]:
    """One-step episodes: context x uniform on 5 values, reward f(x, a) + N(0, 0.5²)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, n)
    a = (rng.random(n)[:, None] > np.cumsum(_X_PB[x], axis=1)).sum(axis=1)
    return {"x": x, "a": a, "r": _F[x, a] + 0.5 * rng.normal(size=n)}


def test_dr_is_unbiased_on_a_contextual_bandit() -> None:
    truth = float(np.mean((_X_PE * _F).sum(axis=1)))  # contexts are uniform
    wrong_q = _F + 0.8 * np.array([1.0, -1.0, 0.5])  # a deliberately biased model
    dr, dm, dr_fqe = [], [], []
    for seed in range(300):
        b = _bandit(seed, 400)
        x, a, r = b["x"], b["a"], b["r"]
        n = x.shape[0]
        ep = np.arange(n)
        rho = ope.importance_ratios(_X_PE[x], _X_PB[x], a)
        v = (_X_PE[x] * wrong_q[x]).sum(axis=1)
        dr.append(ope.dr_estimate(r, rho, wrong_q[x, a], v, ep, gamma=0.9))
        dm.append(ope.fqe_estimate(v, ep))
        fit = ope.fitted_q_evaluation(
            np.eye(5)[x], a, r, np.zeros((n, 5)), np.ones(n, bool), _X_PE[x], gamma=0.9
        )
        dr_fqe.append(ope.dr_estimate(r, rho, fit.q_taken(a), fit.value(_X_PE[x]), ep, gamma=0.9))
    for name, est in [("dr (biased model)", dr), ("dr (FQE model)", dr_fqe)]:
        se = np.std(est, ddof=1) / math.sqrt(len(est))
        assert abs(np.mean(est) - truth) <= 2 * se, (name, np.mean(est), truth, se)
    # the check has power: the biased model alone (the direct method) is far off
    se_dm = np.std(dm, ddof=1) / math.sqrt(len(dm))
    assert abs(np.mean(dm) - truth) > 20 * max(se_dm, 1e-3)


# ------------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("pad,steps", [(1.5, 1024), (1.0, 1), (1e9, 1024)])
def test_vectorized_bootstrap_equals_explicit_episode_resampling(
    monkeypatch: pytest.MonkeyPatch, pad: float, steps: int
) -> None:
    """Each replicate equals the point estimators run on the explicitly resampled episodes,
    self-normalized ones included (ragged episode lengths exercise the padded normalizer),
    whether steps are batched as by default, one per bin, or all in one zero-padded bin."""
    monkeypatch.setattr(ope_estimators, "_BIN_PAD", pad)
    monkeypatch.setattr(ope_estimators, "_BIN_STEPS", steps)
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 12, 15)
    ep = np.repeat(np.arange(15) * 10 + 3, lengths)
    n = ep.shape[0]
    reward, q, v = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    rho = rng.uniform(0.2, 2.0, n)
    rho[rng.random(n) < 0.1] = 0.0  # some deviate from a deterministic target
    idx = rng.integers(0, 15, size=(20, 15))
    counts = np.stack([np.bincount(i, minlength=15) for i in idx])
    reps = ope.bootstrap_replicates(reward, rho, q, v, ep, gamma=0.9, counts=counts)
    starts = np.r_[0, np.cumsum(lengths)]
    for b, draw in enumerate(idx):
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in draw])
        new_ep = np.repeat(np.arange(15), lengths[draw])  # a resampled episode twice = twice
        args = (reward[rows], rho[rows])
        expect = {
            "is": ope.is_estimate(*args, new_ep, gamma=0.9),
            "wis": ope.wis_estimate(*args, new_ep, gamma=0.9),
            "pdis": ope.pdis_estimate(*args, new_ep, gamma=0.9),
            "wpdis": ope.wpdis_estimate(*args, new_ep, gamma=0.9),
            "dr": ope.dr_estimate(*args, q[rows], v[rows], new_ep, gamma=0.9),
            "sndr": ope.sndr_estimate(*args, q[rows], v[rows], new_ep, gamma=0.9),
            "fqe": ope.fqe_estimate(v[rows], new_ep),
            "behaviour": ope.on_policy_value(reward[rows], new_ep, gamma=0.9),
        }
        for name, value in expect.items():
            assert reps.replicates[name][b] == pytest.approx(value, abs=1e-10), (name, b)


def test_bootstrap_interval_matches_normal_theory_and_is_seeded() -> None:
    rng = np.random.default_rng(11)
    ep = np.repeat(np.arange(2000), 3)
    reward = rng.normal(size=ep.shape[0])
    ones = np.ones(ep.shape[0])
    kw = {"gamma": 0.9, "n_boot": 2000, "seed": 4}
    reps = ope.bootstrap_replicates(reward, ones, ones, ones, ep, **kw)
    lo, hi = ope.percentile_interval(reps.replicates["behaviour"], 0.95)
    returns = reward.reshape(-1, 3) @ (0.9 ** np.arange(3))
    half = 1.96 * returns.std(ddof=1) / math.sqrt(2000)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert lo < returns.mean() < hi
    again = ope.bootstrap_replicates(reward, ones, ones, ones, ep, **kw)
    np.testing.assert_array_equal(again.replicates["dr"], reps.replicates["dr"])
    other = ope.bootstrap_replicates(reward, ones, ones, ones, ep, **{**kw, "seed": 5})
    assert not np.array_equal(other.replicates["dr"], reps.replicates["dr"])
    assert ope.percentile_interval(np.r_[reps.replicates["dr"], np.nan], 0.95) != (lo, hi)
    assert all(math.isnan(x) for x in ope.percentile_interval(np.array([1.0, np.nan]), 0.9))


# --------------------------------------------------------------- the gate, synthetic sizing

# State s: the name's standardized vol, AR(1) s' = 0.8 s + 0.6 ε. Holding bucket b earns
# b (0.5 − 0.5 s) − 0.1 b² + noise: size should fall as vol rises. Episodes of 3 sessions.


def _softmax_policy(kappa: float) -> Policy:
    b = np.asarray(BUCKETS)[None, :]

    def probs(x: np.ndarray) -> np.ndarray:
        u = kappa * (b * (0.5 - 0.5 * x[:, :1]) - 0.1 * b**2)
        e = np.exp(u - u.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return probs


def _behaviour(x: np.ndarray) -> np.ndarray:
    """ε-greedy around the baseline bucket 1.0 (ε = 0.6): 0.55 on it, 0.15 on each other."""
    p = np.full((x.shape[0], 4), 0.15)
    p[:, 2] = 0.55
    return p


def _simulate(policy: Policy, n_ep: int, horizon: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    n = n_ep * horizon
    b = np.asarray(BUCKETS)
    obs, nxt = np.empty((n, 1)), np.empty((n, 1))
    act, rew, probs = np.empty(n, np.int64), np.empty(n), np.empty((n, 4))
    s = rng.normal(size=n_ep)
    for t in range(horizon):
        rows = np.arange(n_ep) * horizon + t
        p = policy(s[:, None])
        a = (rng.random(n_ep)[:, None] > np.cumsum(p, axis=1)).sum(axis=1).clip(0, 3)
        s2 = 0.8 * s + 0.6 * rng.normal(size=n_ep)
        obs[rows, 0], nxt[rows, 0], act[rows], probs[rows] = s, s2, a, p
        rew[rows] = b[a] * (0.5 - 0.5 * s) - 0.1 * b[a] ** 2 + 0.1 * rng.normal(size=n_ep)
        s = s2
    done = np.zeros(n, bool)
    done[horizon - 1 :: horizon] = True
    nxt[done] = 0.0
    return Transitions(
        obs=obs.astype(np.float32),
        action=act,
        reward=rew,
        next_obs=nxt.astype(np.float32),
        done=done,
        episode=np.repeat(np.arange(n_ep), horizon),
        step=np.tile(np.arange(horizon), n_ep),
        behaviour_probs=probs,
        buckets=BUCKETS,
    )


@pytest.fixture(scope="module")
def logged() -> Transitions:
    return _simulate(_behaviour, 6000, 3, seed=0)


def _report(data: Transitions, policy: Policy) -> ope.OPEReport:
    return ope.evaluate(
        data, policy(data.obs), policy(data.next_obs), gamma=0.9, n_boot=500, level=0.95, seed=0
    )


def test_gate_passes_a_clearly_better_policy(logged: Transitions) -> None:
    better = _softmax_policy(3.0)
    truth = ope.on_policy_value(*_rewards(_simulate(better, 50_000, 3, seed=7)), gamma=0.9)
    base = ope.on_policy_value(*_rewards(_simulate(_behaviour, 50_000, 3, seed=8)), gamma=0.9)
    assert truth > base + 0.3  # the synthetic market really is built this way
    report = _report(logged, better)
    dr = report.estimates["dr"]
    assert dr.lower < truth < dr.upper
    assert report.vs_behaviour["dr"].lower > 0
    assert report.fqe_converged and report.n_episodes == 6000 and 0 < report.ess < 6000
    passed, failed = ope.ope_gate(report, margin=0.05)
    assert passed and failed == {}
    # the same report fails a margin it does not clear, and says by how much
    passed, failed = ope.ope_gate(report, margin=1.0)
    assert not passed
    assert failed["dr_lower_vs_behaviour"].startswith(f"dr_lower_vs_behaviour={dr.lower:.4g}")


def _rewards(d: Transitions) -> tuple[np.ndarray, np.ndarray]:
    return d.reward, d.episode


@pytest.mark.parametrize(
    "name,policy",
    [
        ("random", lambda x: np.full((x.shape[0], 4), 0.25)),
        ("behaviour", _behaviour),
        ("worse", _softmax_policy(-3.0)),  # sizes up as vol rises
    ],
)
def test_gate_refuses_random_behaviour_and_worse_policies(
    logged: Transitions, name: str, policy: Policy
) -> None:
    report = _report(logged, policy)
    passed, failed = ope.ope_gate(report, margin=0.02)
    assert not passed, name
    assert set(failed) == {"dr_lower_vs_behaviour"}
    # even with no margin, the DR lower bound does not reach the baseline's value
    assert not ope.ope_gate(report, margin=0.0)[0], name


def test_nan_fails_closed(logged: Transitions) -> None:
    better = _softmax_policy(3.0)
    pi, pi_next = better(logged.obs), better(logged.next_obs)
    assert ope.ope_gate(_report(logged, better), margin=0.05)[0]
    reward = logged.reward.copy()
    reward[17] = np.nan
    bad_reward = Transitions(**{**logged.__dict__, "reward": reward})
    pi_bad = pi.copy()
    pi_bad[5] = np.nan
    pi_next_bad = pi_next.copy()
    pi_next_bad[np.flatnonzero(logged.done)[3]] = np.nan  # even at a row that ends
    cases = [
        ope.evaluate(bad_reward, pi, pi_next, gamma=0.9, n_boot=50),
        ope.evaluate(logged, pi_bad, pi_next, gamma=0.9, n_boot=50),
        ope.evaluate(logged, pi, pi_next_bad, gamma=0.9, n_boot=50),
    ]
    for report in cases:
        assert math.isnan(report.estimates["dr"].estimate)
        assert math.isnan(report.estimates["dr"].lower)
        passed, failed = ope.ope_gate(report, margin=0.05)
        assert not passed
        assert "NaN" in failed["dr_lower_vs_behaviour"]
    # a NaN behaviour value (the bar itself) fails closed too
    report = _report(logged, better)
    nan_base = ope.OPEReport(**{**report.__dict__, "behaviour": ope.Interval(math.nan, 0, 1)})
    assert not ope.ope_gate(nan_base, margin=0.05)[0]
    # and so does a NaN effective sample size when an ESS bar is asked for
    nan_ess = ope.OPEReport(**{**report.__dict__, "ess": math.nan})
    assert ope.ope_gate(nan_ess, margin=0.05)[0]
    passed, failed = ope.ope_gate(nan_ess, margin=0.05, min_ess=10)
    assert not passed and set(failed) == {"ess"}


def test_unconverged_fqe_is_reported_not_trusted(logged: Transitions) -> None:
    """An FQE stopped early is no estimate (NaN); DR keeps using its Q as a control variate,
    which leaves DR unbiased, so the DR interval still exists. The flat metrics carry it all."""
    better = _softmax_policy(3.0)
    report = ope.evaluate(
        logged, better(logged.obs), better(logged.next_obs), gamma=0.9, n_boot=50, fqe_iter=2
    )
    assert not report.fqe_converged and report.fqe_iterations == 2
    assert math.isnan(report.estimates["fqe"].estimate)
    assert math.isnan(report.estimates["fqe"].lower)
    assert np.isfinite([report.estimates["dr"].estimate, report.estimates["dr"].lower]).all()
    m = report.metrics()
    assert m["ope_dr_lo"] == report.estimates["dr"].lower
    assert m["ope_behaviour"] == report.behaviour.estimate
    assert math.isnan(m["ope_fqe"]) and m["ope_n_episodes"] == 6000
