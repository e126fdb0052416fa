"""A Decision Transformer sizing policy (d3rlpy's `DiscreteDecisionTransformer`) — an optional
challenger to CQL and IQL, judged by the same gate.

A Decision Transformer does not learn values: it learns which bucket the log took given the
state and the return that followed, and then acts as if asked for a high return. Here every
episode is one decision (``offline_rl.episode: session``), so the context is one step — the
token sequence (return-to-go, state) — and the policy is return-conditioned behaviour
cloning: predict(s) = argmax_a π(a | s, R*), with R* the `target_quantile` of the logged
(scaled) rewards. Conditioning on returns is known to mislead in stochastic markets — a high
return is often luck, not the action (Paster et al. 2022) — which is why it only ever
challenges: the gate (DR lower bound and the later-sessions replay) decides, as for the others.

Training only: d3rlpy and torch are imported lazily. The exported ONNX graph (`onnx_head`)
holds the observation scaler, the transformer and R*, so serving is the same
`serving.OnnxBucketPolicy` as for CQL and IQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.quiet_d3rlpy import import_d3rlpy, quiet

__all__ = ["DT_DEFAULTS", "dt_config", "dt_dataset", "dt_logits", "onnx_head", "target_return"]

#: A small transformer for a one-step context: d3rlpy's defaults (6 layers, 8 heads, a
#: context of 20) are sized for Atari trajectories.
DT_DEFAULTS: dict[str, Any] = {
    "context_size": 1,
    "max_timestep": 1,
    "num_heads": 2,
    "num_layers": 2,
    "learning_rate": 1e-3,
    "attn_dropout": 0.0,
    "resid_dropout": 0.0,
    "embed_dropout": 0.0,
    "warmup_tokens": 0,
}


def _one_step(data: Transitions) -> None:
    if data.n and not (np.diff(data.episode) != 0).all():
        raise ValueError(
            "dt: the decision transformer is conditioned on one decision's return; every "
            "episode must be one decision (offline_rl.episode: session)"
        )


def target_return(data: Transitions, quantile: float, reward_scale: float) -> float:
    """R*: the `quantile` of the logged rewards, scaled as in training."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"dt: target quantile must be in (0, 1), got {quantile}")
    return float(np.quantile(data.reward, quantile)) * reward_scale


def dt_dataset(data: Transitions, *, reward_scale: float) -> Any:
    """d3rlpy's `MDPDataset` with every decision its own terminal one-step episode (its
    return-to-go is its own scaled reward)."""
    d3rlpy = import_d3rlpy()
    if data.n == 0:
        raise ValueError("offline RL: no transitions to train on")
    _one_step(data)
    with quiet():
        return d3rlpy.dataset.MDPDataset(
            observations=data.obs.astype(np.float32),
            actions=data.action.astype(np.int64),
            rewards=(data.reward * reward_scale).astype(np.float32).reshape(-1, 1),
            terminals=np.ones(data.n, np.float32),
            action_space=d3rlpy.ActionSpace.DISCRETE,
            action_size=data.n_actions,
        )


def dt_config(batch_size: int, hidden_units: Sequence[int], hyper: dict[str, Any]) -> Any:
    """`DiscreteDecisionTransformerConfig`: `DT_DEFAULTS` overridden by `hyper` (the state
    encoder's last width is the embedding size, so it must divide by ``num_heads``)."""
    d3rlpy = import_d3rlpy()
    params: dict[str, Any] = {
        **DT_DEFAULTS,
        "batch_size": batch_size,
        "observation_scaler": d3rlpy.preprocessing.StandardObservationScaler(),
        "encoder_factory": d3rlpy.models.VectorEncoderFactory(hidden_units=list(hidden_units)),
        "position_encoding_type": d3rlpy.PositionEncodingType.SIMPLE,
    }
    params.update({k: v for k, v in hyper.items() if k != "gamma"})  # no bootstrapping
    if hidden_units[-1] % params["num_heads"]:
        raise ValueError(
            f"dt: the embedding width {hidden_units[-1]} (last hidden unit) must divide by "
            f"num_heads {params['num_heads']}"
        )
    try:
        return d3rlpy.algos.DiscreteDecisionTransformerConfig(**params)
    except TypeError as exc:
        raise ValueError(f"dt: bad hyperparameters {sorted(hyper)}: {exc}") from exc


def _head(learner: Any, target: float) -> Any:
    """An `nn.Module`: states (N, d) → action logits (N, K) given return-to-go R*."""
    import torch

    transformer = learner.impl.modules.transformer
    scaler = learner.observation_scaler

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer
            self.register_buffer("mean", torch.as_tensor(scaler.mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(scaler.std, dtype=torch.float32))
            self.eps = float(scaler.eps)
            self.target = float(target)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            x = ((obs - self.mean) / (self.std + self.eps)).unsqueeze(1)  # (N, 1, d)
            zeros = torch.zeros_like(x[:, :, :1])  # (N, 1, 1)
            rtg = zeros + self.target
            action = zeros.to(torch.int64)  # dropped at inference: it follows the state
            steps = zeros[:, :, 0].to(torch.int64) + 1  # d3rlpy's steps count from 1
            mask = torch.zeros_like(zeros[:, :, 0])  # 1 − d3rlpy's mask of real steps
            _, logits = self.transformer(x, action, rtg, steps, mask)
            return logits[:, -1, :]

    return Head().eval()  # eval: the transformer drops the trailing action token


def dt_logits(learner: Any, obs: np.ndarray, target: float) -> np.ndarray:
    """(N, K) action logits of the trained transformer for states `obs` given R*."""
    import torch

    head = _head(learner, target)
    device = next(head.parameters()).device
    with torch.no_grad():
        out = head(torch.as_tensor(obs, dtype=torch.float32, device=device))
    return out.cpu().numpy().astype(np.float64)


def onnx_head(learner: Any, target: float) -> Any:
    """A module for `torch.onnx.export`: states → the greedy bucket index (int64)."""
    import torch

    head = _head(learner, target)

    class Greedy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.argmax(self.head(obs), dim=1)

    return Greedy().eval()
