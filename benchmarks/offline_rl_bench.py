"""Offline RL sizing benchmarks (JSON lines on stdout, progress on stderr)::

    python -m benchmarks.offline_rl_bench ope [--quick]   # OPE report with 1,000 resamples
    python -m benchmarks.offline_rl_bench fqe [--quick]   # Fitted Q Evaluation throughput
    python -m benchmarks.offline_rl_bench cql [--quick]   # CQL training throughput (d3rlpy)
    python -m benchmarks.offline_rl_bench all [--quick]

`ope`: wall seconds of `ope.evaluate` (FQE fit + every estimator + 1,000 episode-bootstrap
resamples) on 1 M logged transitions of a synthetic sizing book — 20,000 episodes × 50
sessions (`ope_bootstrap_1m`, target 10 s), then the same 1 M transitions cut as 1,000
episodes × 1,000 sessions (`ope_bootstrap_1m_long`) and as 1 M one-step episodes
(`ope_bootstrap_1m_bandit`, the worst case: the bootstrap draws 10⁹ episode indices).
`fqe`: transitions per second of `fitted_q_evaluation` with the default closed-form ridge
(`fqe_throughput`, the whole fit to convergence), and per refit iteration of the generic path
that refits a regressor every iteration (`fqe_generic_iter_throughput`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

TARGET_OPE_S = 10.0
BUCKETS = (0.0, 0.5, 1.0, 1.5)
N_FEATURES = 8
GAMMA = 0.99
EPSILON = 0.2


def _log(msg: str) -> None:
    print(f"[offline_rl_bench] {msg}", file=sys.stderr, flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _behaviour_row() -> np.ndarray:
    """ε-greedy on the baseline bucket 1.0 ×: 1 − ε + ε/K on it, ε/K on each other."""
    k = len(BUCKETS)
    row = np.full(k, EPSILON / k)
    row[2] += 1 - EPSILON
    return row


def _target(obs: np.ndarray) -> np.ndarray:
    """A sizing challenger: 80% the baseline's own probabilities, 20% a softmax over buckets
    that sizes down as the vol feature rises (close enough to the log for useful weights)."""
    b = np.asarray(BUCKETS)[None, :]
    u = 2.0 * b * (0.3 * obs[:, :1] - 0.5 * obs[:, 2:3]) - 0.2 * b**2
    e = np.exp(u - u.max(axis=1, keepdims=True))
    return 0.8 * _behaviour_row()[None, :] + 0.2 * e / e.sum(axis=1, keepdims=True)


def synthetic_book(n_episodes: int, horizon: int, seed: int = 0) -> Any:
    """`Transitions` of an ε-greedy baseline book (bucket 1.0 ×, ε = 0.2) on AR(1) states:
    8 features (alpha score, vol, …), reward = size × (alpha − vol) − cost − size² penalty."""
    from trademl.models.offline_rl.data import Transitions

    rng = np.random.default_rng(seed)
    n, k = n_episodes * horizon, len(BUCKETS)
    b = np.asarray(BUCKETS)
    probs_row = _behaviour_row()
    cum = np.cumsum(probs_row)
    obs = np.empty((n, N_FEATURES), dtype=np.float32)
    nxt = np.empty_like(obs)
    act = np.empty(n, dtype=np.int64)
    rew = np.empty(n)
    s = rng.normal(size=(n_episodes, N_FEATURES))
    for t in range(horizon):
        rows = np.arange(n_episodes) * horizon + t
        a = np.minimum(np.searchsorted(cum, rng.random(n_episodes)), k - 1)
        s2 = 0.9 * s + 0.44 * rng.normal(size=s.shape)
        obs[rows], nxt[rows], act[rows] = s, s2, a
        edge = 0.3 * s[:, 0] - 0.5 * s[:, 2]
        rew[rows] = b[a] * edge - 0.05 * np.abs(b[a] - 1.0) - 0.1 * b[a] ** 2
        rew[rows] += 0.5 * rng.normal(size=n_episodes)
        s = s2
    done = np.zeros(n, dtype=bool)
    done[horizon - 1 :: horizon] = True
    nxt[done] = 0.0
    return Transitions(
        obs=obs,
        action=act,
        reward=rew,
        next_obs=nxt,
        done=done,
        episode=np.repeat(np.arange(n_episodes, dtype=np.int64), horizon),
        step=np.tile(np.arange(horizon, dtype=np.int64), n_episodes),
        behaviour_probs=np.broadcast_to(probs_row, (n, k)).copy(),
        buckets=BUCKETS,
    )


def ope(quick: bool) -> list[dict]:
    from trademl.models.offline_rl.ope import evaluate

    n_boot = 1000
    shapes = [("ope_bootstrap_1m", 20_000, 50)]
    if quick:
        shapes = [("ope_bootstrap_quick", 2_000, 50)]
    else:
        shapes += [("ope_bootstrap_1m_long", 1_000, 1_000), ("ope_bootstrap_1m_bandit", 10**6, 1)]
    lines = []
    for name, episodes, horizon in shapes:
        _log(f"{name}: {episodes:,} episodes × {horizon} steps …")
        data = synthetic_book(episodes, horizon)
        pi, pi_next = _target(data.obs), _target(data.next_obs)
        load0 = _load()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        rep = evaluate(data, pi, pi_next, gamma=GAMMA, n_boot=n_boot, level=0.95, seed=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        dr = rep.estimates["dr"]
        _log(f"{name}: {wall:.2f} s; DR {dr.estimate:.4f} [{dr.lower:.4f}, {dr.upper:.4f}]")
        lines.append(
            {
                "name": name,
                "value": round(wall, 3),
                "unit": "s",
                "target": TARGET_OPE_S,
                "pass": wall <= TARGET_OPE_S,
                "transitions": data.n,
                "episodes": episodes,
                "horizon": horizon,
                "n_boot": n_boot,
                "cpu_s": round(cpu, 3),
                "fqe_iterations": rep.fqe_iterations,
                "dr": [round(x, 5) for x in (dr.estimate, dr.lower, dr.upper)],
                "behaviour": round(rep.behaviour.estimate, 5),
                "ess": round(rep.ess, 1),
                "loadavg_1m": [load0, _load()],
            }
        )
    return lines


def fqe(quick: bool) -> list[dict]:
    from trademl.models.offline_rl.ope import RidgeQ, fitted_q_evaluation

    class RefitRidge(RidgeQ):
        """The same ridge, refitted every iteration (the generic path)."""

    episodes = 2_000 if quick else 20_000
    data = synthetic_book(episodes, 50)
    pi_next = _target(data.next_obs)
    args = (data.obs, data.action, data.reward, data.next_obs, data.done, pi_next)
    _log(f"fqe: {data.n:,} transitions, γ = {GAMMA} …")
    load0 = _load()
    t0 = time.perf_counter()
    fit = fitted_q_evaluation(*args, gamma=GAMMA)
    wall = time.perf_counter() - t0
    generic_iters = 5
    t1 = time.perf_counter()
    fitted_q_evaluation(*args, gamma=GAMMA, regressor=RefitRidge(), n_iter=generic_iters)
    generic = time.perf_counter() - t1
    _log(f"fqe: {wall:.2f} s, {fit.n_iter} iterations; generic {generic:.2f} s / 5 iterations")
    return [
        {
            "name": "fqe_throughput",
            "value": round(data.n / wall),
            "unit": "transitions/s",
            "wall_s": round(wall, 3),
            "transitions": data.n,
            "iterations": fit.n_iter,
            "converged": fit.converged,
            "features": 2 * N_FEATURES + 1,
            "actions": len(BUCKETS),
            "gamma": GAMMA,
            "loadavg_1m": [load0, _load()],
        },
        {
            "name": "fqe_generic_iter_throughput",
            "value": round(data.n * generic_iters / generic),
            "unit": "transition-iterations/s",
            "wall_s": round(generic, 3),
            "iterations": generic_iters,
            "note": "refits RidgeQ every iteration; the default path iterates its coefficients",
        },
    ]


def cql(quick: bool) -> list[dict[str, Any]]:
    """Discrete CQL (d3rlpy, CPU, one thread) on 1 M logged transitions: building the dataset,
    then gradient steps of 256 sampled transitions; transitions sampled per second."""
    from trademl.models.offline_rl.algos import build_mdp_dataset, train_policy
    from trademl.models.offline_rl.data import Transitions

    n, steps = (50_000, 200) if quick else (1_000_000, 2_000)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    done = np.zeros(n, bool)
    done[49::50] = True
    k = len(BUCKETS)
    probs = np.full((n, k), 0.125)
    probs[:, 2] = 0.625
    data = Transitions(
        obs=obs,
        action=rng.integers(0, k, n),
        reward=rng.standard_normal(n),
        next_obs=np.where(done[:, None], 0, np.roll(obs, -1, axis=0)).astype(np.float32),
        done=done,
        episode=np.arange(n) // 50,
        step=np.arange(n) % 50,
        behaviour_probs=probs,
        buckets=BUCKETS,
    )
    t0 = time.perf_counter()
    build_mdp_dataset(data, "cql")
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_policy(data, "cql", n_steps=steps, batch_size=256, seed=0, threads=1)
    wall = time.perf_counter() - t0
    return [
        {
            "name": "cql_train_throughput",
            "value": round(steps * 256 / wall),
            "unit": "transitions/s",
            "gradient_steps_per_s": round(steps / wall, 1),
            "dataset_transitions": n,
            "dataset_build_s": round(built, 2),
            "wall_s": round(wall, 2),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.offline_rl_bench", description=__doc__)
    p.add_argument("case", choices=["ope", "fqe", "cql", "all"])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    lines: list[dict] = []
    if a.case in ("ope", "all"):
        lines += ope(a.quick)
    if a.case in ("fqe", "all"):
        lines += fqe(a.quick)
    if a.case in ("cql", "all"):
        lines += cql(a.quick)
    for line in lines:
        if a.quick:
            line["mode"] = "quick"
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
