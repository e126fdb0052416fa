"""Logged `Transitions` as d3rlpy's `MDPDataset`, and the nearest-bucket projection IQL's
continuous action goes through (see `algos`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.quiet_d3rlpy import import_d3rlpy, quiet

Algo = Literal["cql", "iql", "dt"]


def nearest_bucket(size: np.ndarray, buckets: Sequence[float]) -> np.ndarray:
    """Index of the bucket nearest each continuous size multiplier (ties → lower index).

    Computed in float32, as the exported ONNX graph does, so both agree exactly.

    Parameters
    ----------
    size : (N,) or (N, 1) array of multipliers.
    buckets : the K bucket multipliers, in action order.

    Returns
    -------
    (N,) int64 bucket indices.
    """
    s = np.asarray(size, dtype=np.float32).reshape(-1, 1)
    b = np.asarray(buckets, dtype=np.float32).reshape(1, -1)
    return np.abs(s - b).argmin(axis=1).astype(np.int64)


def _episode_ends(data: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """Rows that end a d3rlpy episode, and which of those are terminal.

    An episode ends at ``done`` (terminal: the name left the book, no next state to
    bootstrap from) or where the logged run stops without ``done`` — the next row is another
    episode or the data ends (a timeout: the state `next_obs` exists but was not yet logged).
    """
    n = data.n
    done = np.asarray(data.done, dtype=bool)
    boundary = np.zeros(n, dtype=bool)
    if n:
        boundary[:-1] = data.episode[1:] != data.episode[:-1]
        boundary[-1] = True
    return done | boundary, done


def build_mdp_dataset(data: Transitions, algo: Algo, *, reward_scale: float = 1.0) -> Any:
    """The d3rlpy `MDPDataset` of `data`, with terminals and timeouts placed correctly.

    d3rlpy reads episodes as observation sequences: the next state of row t is the
    observation of row t+1, a terminal episode's last row bootstraps from nothing, and a
    timed-out episode's last row is an observation only (no transition starts there). So a
    ``done`` row is flagged terminal, and an episode cut without ``done`` gets its logged
    `next_obs` appended as one extra row flagged timeout (its action and reward are never
    read) — every logged decision is a transition and none bootstraps across episodes.

    Parameters
    ----------
    data : the logged transitions.
    algo : ``"cql"`` (discrete actions = bucket indices) or ``"iql"`` (continuous actions =
        bucket multipliers, shape (N, 1)).
    reward_scale : rewards are multiplied by it.

    Returns
    -------
    d3rlpy.dataset.MDPDataset
    """
    d3rlpy = import_d3rlpy()
    if data.n == 0:
        raise ValueError("offline RL: no transitions to train on")
    ends, terminal = _episode_ends(data)
    timeout_rows = np.flatnonzero(ends & ~terminal)
    # insert the extra observation after each timed-out episode's last row
    insert_at = timeout_rows + 1
    obs = np.insert(data.obs.astype(np.float32), insert_at, data.next_obs[timeout_rows], axis=0)
    action = np.insert(data.action.astype(np.int64), insert_at, data.action[timeout_rows])
    reward = np.insert(data.reward.astype(np.float64) * reward_scale, insert_at, 0.0)
    terminals = np.insert(terminal.astype(np.float32), insert_at, 0.0)
    timeouts = np.insert(np.zeros(data.n, np.float32), insert_at, 1.0)
    if algo == "cql":
        actions: np.ndarray = action
        space, size = d3rlpy.ActionSpace.DISCRETE, data.n_actions
    else:
        actions = np.asarray(data.buckets, np.float32)[action].reshape(-1, 1)
        space, size = d3rlpy.ActionSpace.CONTINUOUS, 1
    with quiet():
        return d3rlpy.dataset.MDPDataset(
            observations=obs,
            actions=actions,
            rewards=reward.astype(np.float32).reshape(-1, 1),
            terminals=terminals,
            timeouts=timeouts,
            action_space=space,
            action_size=size,
        )
