"""Logged transitions for offline RL sizing: what the behaviour (baseline) book did, what it
earned, and the probability it gave every action — the input of training and of off-policy
evaluation alike.

Action k means "hold `buckets[k]` × the target weight" (e.g. 0, 0.5, 1, 1.5). Each episode is
one name's consecutive sessions in the book; `step` counts from 0 within it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Transitions"]


@dataclass(frozen=True)
class Transitions:
    """N logged decisions, arrays aligned on the first axis.

    Parameters
    ----------
    obs, next_obs : (N, d) float32 — the state at the decision and at the next decision of the
        same episode (zeros where `done`).
    action : (N,) int64 — the bucket index taken.
    reward : (N,) float64 — the realized reward of that decision (see `env.reward`).
    done : (N,) bool — the episode ends after this decision.
    episode : (N,) int64 — episode id; rows of an episode are contiguous and in step order.
    step : (N,) int64 — 0, 1, … within the episode.
    behaviour_probs : (N, K) float64 — the behaviour policy's probability of every bucket at
        this state (rows sum to 1); needed for importance sampling and doubly robust OPE.
    buckets : the K size multipliers, in action order.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    done: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    behaviour_probs: np.ndarray
    buckets: tuple[float, ...]

    def __post_init__(self) -> None:
        n = self.obs.shape[0]
        k = len(self.buckets)
        shapes = {
            "action": self.action.shape == (n,),
            "reward": self.reward.shape == (n,),
            "next_obs": self.next_obs.shape == self.obs.shape,
            "done": self.done.shape == (n,),
            "episode": self.episode.shape == (n,),
            "step": self.step.shape == (n,),
            "behaviour_probs": self.behaviour_probs.shape == (n, k),
        }
        bad = [name for name, ok in shapes.items() if not ok]
        if bad:
            raise ValueError(f"transitions: {bad} do not align with obs {self.obs.shape}, K={k}")
        if n and not np.allclose(self.behaviour_probs.sum(axis=1), 1.0, atol=1e-9):
            raise ValueError("transitions: behaviour_probs rows must sum to 1")
        if n and ((self.action < 0) | (self.action >= k)).any():
            raise ValueError(f"transitions: actions must be bucket indices in [0, {k})")

    @property
    def n(self) -> int:
        return int(self.obs.shape[0])

    @property
    def n_actions(self) -> int:
        return len(self.buckets)

    def logged_prob(self) -> np.ndarray:
        """The behaviour policy's probability of the action it took, per row."""
        return self.behaviour_probs[np.arange(self.n), self.action]
