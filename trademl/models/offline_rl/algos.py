"""Offline RL sizing policies — discrete CQL and IQL trained with d3rlpy 2.8 on logged
`Transitions`.

Training only: d3rlpy (the optional ``rl`` extra) is imported lazily, inside the functions
that need it, so importing this module stays cheap and the core install does not need it.
Serving runs the exported ONNX graph (`export.export_onnx`, `serving.OnnxBucketPolicy`).

d3rlpy is noisy in ways that must not reach asset logs: it is imported and run through
`quiet_d3rlpy` (stderr and warnings captured, its loggers pointed at DEBUG).

Algorithms
----------
``"cql"``
    d3rlpy's `DiscreteCQL`: a Q-network over the K buckets with the conservative penalty
    ``alpha · (logsumexp_a Q(s, a) − Q(s, a_logged))``; the policy is the greedy bucket.
``"iql"``
    d3rlpy's `IQL` is a continuous-action algorithm (expectile value regression + advantage-
    weighted regression of a Gaussian actor). Here it is trained on the 1-D continuous action
    *bucket multiplier* (``buckets[action]``, scaled to [-1, 1] by a `MinMaxActionScaler` over
    the bucket range), and its deterministic action (the actor's mean, a multiplier in
    ``[min(buckets), max(buckets)]``) is mapped to the **nearest bucket** (ties → the smaller
    bucket index). The exported ONNX graph does the same mapping, so it also outputs bucket
    indices. Because the actor is a unimodal Gaussian fitted to a discrete action
    distribution, its mean can land between buckets; the nearest-bucket rule is the
    documented projection, not a learned discrete policy.

``"dt"``
    An optional challenger: d3rlpy's `DiscreteDecisionTransformer`, return-conditioned
    behaviour cloning over one-decision episodes (`decision_transformer`).

All see rewards multiplied by ``reward_scale`` (default: 1 / std of the logged rewards, so
the CQL ``alpha`` and the IQL ``weight_temp`` mean the same thing whatever the units of the
reward); `TrainedPolicy.q_values` divides it back out. Observations are standardized by a
`StandardObservationScaler` fitted on the data (it is part of the saved and exported policy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.mdp_dataset import (
    Algo,
    build_mdp_dataset,
    nearest_bucket,
)
from trademl.models.offline_rl.quiet_d3rlpy import import_d3rlpy, quiet

__all__ = [
    "ALGOS",
    "DEFAULTS",
    "TrainedPolicy",
    "build_mdp_dataset",
    "import_d3rlpy",
    "load_policy",
    "nearest_bucket",
    "quiet",
    "train_policy",
]


ALGOS: tuple[str, ...] = ("cql", "iql", "dt")

#: Per-algorithm config defaults (d3rlpy config fields), tuned on standardized rewards for
#: small sizing MDPs: d3rlpy's own defaults (CQL ``alpha=1``, ``target_update_interval=8000``,
#: lr 6.25e-5; IQL ``weight_temp=3``) are sized for Atari / D4RL runs of 10⁵–10⁶ steps and,
#: on a few thousand steps, collapse onto the behaviour policy's most frequent bucket.
#: Anything passed as ``**hyper`` to `train_policy` overrides these.
DEFAULTS: dict[str, dict[str, Any]] = {
    "cql": {
        "learning_rate": 1e-3,
        "alpha": 0.1,
        "gamma": 0.9,
        "target_update_interval": 100,
    },
    "iql": {
        "actor_learning_rate": 1e-3,
        "critic_learning_rate": 1e-3,
        "gamma": 0.9,
        "weight_temp": 10.0,
        "expectile": 0.7,
    },
}

_LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def _seeded(seed: int, threads: int | None) -> Iterator[None]:
    """Seed d3rlpy (Python, NumPy and torch global RNGs) and restore them afterwards.

    d3rlpy samples mini-batches from the global NumPy RNG and initializes networks from the
    global torch RNG, so seeding them is what makes two runs identical; restoring keeps the
    caller's random streams untouched. ``threads`` optionally pins torch's intra-op threads
    for the duration (small networks train faster on one thread).
    """
    import torch

    d3rlpy = import_d3rlpy()
    py_state, np_state, torch_state = (
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
    )
    old_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        d3rlpy.seed(seed)
        torch.manual_seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if threads is not None:
            torch.set_num_threads(old_threads)


def _config(
    algo: Algo, data: Transitions, batch_size: int, hidden_units: Sequence[int], hyper: dict
) -> Any:
    """The d3rlpy config for `algo`: `DEFAULTS` overridden by `hyper`."""
    d3rlpy = import_d3rlpy()
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=list(hidden_units))
    params: dict[str, Any] = {
        **DEFAULTS[algo],
        "batch_size": batch_size,
        "observation_scaler": d3rlpy.preprocessing.StandardObservationScaler(),
    }
    if algo == "cql":
        cls = d3rlpy.algos.DiscreteCQLConfig
        params["encoder_factory"] = encoder
    else:
        cls = d3rlpy.algos.IQLConfig
        for key in ("actor_encoder_factory", "critic_encoder_factory", "value_encoder_factory"):
            params[key] = encoder
        lo, hi = float(min(data.buckets)), float(max(data.buckets))
        if not hi > lo:
            raise ValueError("iql: buckets must span a range (max > min)")
        params["action_scaler"] = d3rlpy.preprocessing.MinMaxActionScaler(
            minimum=np.array([lo]), maximum=np.array([hi])
        )
    params.update(hyper)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"{algo}: bad hyperparameters {sorted(hyper)}: {exc}") from exc


@dataclass
class TrainedPolicy:
    """A trained sizing policy: the d3rlpy learner plus what is needed to read its output.

    Parameters
    ----------
    algo : ``"cql"`` or ``"iql"``.
    learner : the fitted d3rlpy algorithm (`DiscreteCQL` or `IQL`).
    buckets : the K size multipliers, in action order.
    obs_dim : the state width d.
    reward_scale : the factor rewards were multiplied by in training.
    seed, n_steps, batch_size : how it was trained.
    hyper : the d3rlpy config overrides passed to `train_policy`.
    metrics : the last epoch's training losses (for MLflow).
    target_return : ``"dt"`` only: the scaled return-to-go R* it is conditioned on.
    """

    algo: Algo
    learner: Any
    buckets: tuple[float, ...]
    obs_dim: int
    reward_scale: float
    seed: int
    n_steps: int
    batch_size: int
    hyper: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    target_return: float | None = None

    @property
    def n_actions(self) -> int:
        return len(self.buckets)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"policy: obs must be (N, {self.obs_dim}), got {x.shape}")
        return x

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Greedy bucket index per state.

        Parameters
        ----------
        obs : (N, d) states (a single (d,) state is accepted).

        Returns
        -------
        (N,) int64 bucket indices. IQL's continuous multiplier is mapped to the nearest
        bucket (`nearest_bucket`).
        """
        x = self._obs(obs)
        if x.shape[0] == 0:
            return np.zeros(0, np.int64)
        if self.algo == "dt":
            from trademl.models.offline_rl.decision_transformer import dt_logits

            assert self.target_return is not None
            return dt_logits(self.learner, x, self.target_return).argmax(axis=1)
        with quiet():
            out = self.learner.predict(x)
        if self.algo == "cql":
            return np.asarray(out, dtype=np.int64).reshape(-1)
        return nearest_bucket(out, self.buckets)

    def probs(self, obs: np.ndarray) -> np.ndarray:
        """The policy's action distribution per state: one-hot on the greedy bucket.

        Returns
        -------
        (N, K) float64, rows summing to 1 — the target-policy probabilities OPE needs.
        """
        a = self.predict(obs)
        out = np.zeros((a.shape[0], self.n_actions))
        out[np.arange(a.shape[0]), a] = 1.0
        return out

    def sizes(self, obs: np.ndarray) -> np.ndarray:
        """The chosen size multiplier per state, ``buckets[predict(obs)]``."""
        return np.asarray(self.buckets, dtype=np.float64)[self.predict(obs)]

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The learned critic's Q(s, bucket) for every bucket, in reward units.

        For IQL the critic is queried at each bucket's multiplier. CQL's values are
        conservative (pushed down off the logged actions) — diagnostics, not a value estimate;
        use OPE for that.

        Returns
        -------
        (N, K) float64.
        """
        if self.algo == "dt":
            raise ValueError("dt: a decision transformer has no critic; judge it with OPE")
        x = self._obs(obs)
        n = x.shape[0]
        out = np.zeros((n, self.n_actions))
        if n == 0:
            return out
        with quiet():
            for k, b in enumerate(self.buckets):
                act = (
                    np.full(n, k, np.int64)
                    if self.algo == "cql"
                    else np.full((n, 1), b, np.float32)
                )
                out[:, k] = np.asarray(self.learner.predict_value(x, act), dtype=np.float64)
        return out / self.reward_scale

    def meta(self) -> dict[str, Any]:
        """JSON-able description (algo, buckets, shapes, training settings)."""
        return {
            "algo": self.algo,
            "buckets": list(self.buckets),
            "obs_dim": self.obs_dim,
            "reward_scale": self.reward_scale,
            "seed": self.seed,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "hyper": {k: v for k, v in self.hyper.items() if _jsonable(v)},
            "metrics": self.metrics,
            "target_return": self.target_return,
        }

    def save(self, directory: str | Path) -> Path:
        """Write the policy to `directory` (created if needed).

        Files: ``model.d3`` (the d3rlpy learner, reloadable with `load_policy` for further
        training or FQE), ``policy.onnx`` (the serving graph, `export.export_onnx`) and
        ``meta.json`` (`meta`).

        Returns
        -------
        The directory.
        """
        from trademl.models.offline_rl.export import export_onnx

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with quiet():
            self.learner.save(str(out / "model.d3"))
        export_onnx(self, out / "policy.onnx")
        (out / "meta.json").write_text(json.dumps(self.meta(), indent=2, sort_keys=True))
        return out


def _jsonable(v: object) -> bool:
    try:
        json.dumps(v)
    except TypeError:
        return False
    return True


def load_policy(directory: str | Path, *, device: str = "cpu:0") -> TrainedPolicy:
    """Load a policy written by `TrainedPolicy.save` (its ``model.d3`` and ``meta.json``)."""
    d3rlpy = import_d3rlpy()
    src = Path(directory)
    meta = json.loads((src / "meta.json").read_text())
    with quiet():
        learner = d3rlpy.load_learnable(str(src / "model.d3"), device=device)
    return TrainedPolicy(
        algo=meta["algo"],
        learner=learner,
        buckets=tuple(float(b) for b in meta["buckets"]),
        obs_dim=int(meta["obs_dim"]),
        reward_scale=float(meta["reward_scale"]),
        seed=int(meta["seed"]),
        n_steps=int(meta["n_steps"]),
        batch_size=int(meta["batch_size"]),
        hyper=dict(meta.get("hyper", {})),
        metrics=dict(meta.get("metrics", {})),
        target_return=meta.get("target_return"),
    )


def train_policy(
    data: Transitions,
    algo: Algo,
    *,
    n_steps: int,
    batch_size: int,
    seed: int,
    device: str = "cpu:0",
    hidden_units: Sequence[int] = (64, 64),
    reward_scale: float | Literal["std"] = "std",
    threads: int | None = None,
    dt_target_quantile: float = 0.9,
    **hyper: Any,
) -> TrainedPolicy:
    """Train a discrete CQL or IQL sizing policy on logged transitions.

    The caller chooses the data: training as of a session must pass only transitions whose
    reward was known by then.

    Parameters
    ----------
    data : logged transitions (see `build_mdp_dataset` for how episodes are read).
    algo : ``"cql"`` (d3rlpy `DiscreteCQL` over bucket indices) or ``"iql"`` (d3rlpy `IQL` on
        the continuous bucket multiplier, output mapped to the nearest bucket).
    n_steps : gradient steps (one epoch).
    batch_size : mini-batch size.
    seed : seeds Python, NumPy and torch (restored afterwards): same seed, same data, same
        device → the same policy.
    device : ``"cpu:0"`` or ``"cuda:0"``.
    hidden_units : widths of the MLP encoders (Q-network; IQL actor, critics and value).
    reward_scale : factor applied to rewards; ``"std"`` = 1 / their standard deviation.
    threads : torch intra-op threads while training (restored afterwards); None leaves it.
    dt_target_quantile : ``"dt"`` only: R* is this quantile of the logged rewards.
    **hyper : d3rlpy config fields overriding `DEFAULTS` (e.g. ``alpha``, ``gamma``,
        ``weight_temp``, ``expectile``, ``learning_rate``).

    Returns
    -------
    TrainedPolicy
    """
    if algo not in ALGOS:
        raise ValueError(f"offline RL: algo must be one of {ALGOS}, got {algo!r}")
    if n_steps <= 0 or batch_size <= 0:
        raise ValueError("offline RL: n_steps and batch_size must be positive")
    if data.n == 0:
        raise ValueError("offline RL: no transitions to train on")
    for name in ("obs", "next_obs", "reward"):
        if not np.isfinite(getattr(data, name)).all():
            raise ValueError(f"offline RL: non-finite values in {name}")
    if reward_scale == "std":
        std = float(np.std(data.reward))
        scale = 1.0 / std if std > 0 else 1.0
    else:
        scale = float(reward_scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError("offline RL: reward_scale must be positive")
    d3rlpy = import_d3rlpy()
    target = None
    if algo == "dt":
        from trademl.models.offline_rl import decision_transformer as dtm

        dataset = dtm.dt_dataset(data, reward_scale=scale)
        config = dtm.dt_config(batch_size, hidden_units, hyper)
        target = dtm.target_return(data, dt_target_quantile, scale)
    else:
        dataset = build_mdp_dataset(data, algo, reward_scale=scale)
        config = _config(algo, data, batch_size, hidden_units, hyper)
    with _seeded(seed, threads), quiet():
        learner = config.create(device=device)
        history = learner.fit(
            dataset,
            n_steps=n_steps,
            n_steps_per_epoch=n_steps,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            show_progress=False,
        )
    metrics = {k: float(v) for k, v in history[-1][1].items()} if history else {}
    return TrainedPolicy(
        algo=algo,
        learner=learner,
        buckets=tuple(float(b) for b in data.buckets),
        obs_dim=int(data.obs.shape[1]),
        reward_scale=scale,
        seed=seed,
        n_steps=n_steps,
        batch_size=batch_size,
        hyper={"hidden_units": list(hidden_units), **hyper},
        metrics=metrics,
        target_return=target,
    )
