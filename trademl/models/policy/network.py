"""The policy network: the raw state [y_hat, vol, trend, extras...] is oriented along the
forecast (`orient`), standardized (statistics fit on the training split, stored as buffers),
and fed to a tanh MLP → Beta(α, β) with α, β = softplus(·) + 1 > 1, so the density is unimodal
and zero at both ends of the size range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trademl.models.policy.beta import ACTION_MAX, sample_beta

__all__ = ["BetaPolicyNet", "orient"]


def orient(state: torch.Tensor) -> torch.Tensor:
    """[y_hat, vol, trend, extras...] → [|y_hat|, sign(y_hat), vol, sign(y_hat)·trend, extras...].

    The size applies along sign(y_hat), so what matters is the forecast's magnitude and whether
    the trend agrees with it; a tanh MLP on the signed y_hat would have to learn |·| first (a
    planted optimum ∝ |y_hat| is invisible to it at initialization). sign(y_hat) stays an input
    so longs and shorts may still be sized differently. Extras pass through unchanged.
    """
    y_hat = state[:, :1]
    s = torch.sign(y_hat)
    return torch.cat([y_hat.abs(), s, state[:, 1:2], s * state[:, 2:3], state[:, 3:]], dim=1)


class BetaPolicyNet(nn.Module):
    """MLP on raw states [n, n_features] → Beta concentrations; forward = deterministic action.

    `orient` and the standardization (x − mean) / std of its output (buffers of length
    n_features + 1) are part of the module, so training, the saved state_dict and the ONNX
    graph all apply the same transform. The output layer starts
    at zero: the initial policy is Beta(1.69, 1.69) for every state — mean action 1.0, the
    constant-size baseline, with broad exploration — and serves as the frozen KL reference.

    Parameters
    ----------
    n_features : number of raw state inputs (y_hat, vol, trend, then any extras), >= 3.
    hidden : widths of the hidden tanh layers.
    state_mean, state_std : standardization statistics of the oriented state, n_features + 1
        values each (default 0 and 1); `orient_stats` computes them from training states.
    generator : seeds the hidden-layer initialization (U(±1/√fan_in), torch's Linear default).
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        *,
        state_mean: np.ndarray | None = None,
        state_std: np.ndarray | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_features < 3 or not hidden or min(hidden) < 1:
            raise ValueError(f"bad network shape: n_features={n_features} (>= 3), hidden={hidden}")
        n_in = n_features + 1
        mean = np.zeros(n_in) if state_mean is None else np.asarray(state_mean)
        std = np.ones(n_in) if state_std is None else np.asarray(state_std)
        if mean.shape != (n_in,) or std.shape != (n_in,) or not (std > 0).all():
            raise ValueError(f"state_mean/state_std must be shape ({n_in},), std > 0")
        self.register_buffer("state_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("state_std", torch.as_tensor(std, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = n_in
        with torch.random.fork_rng(devices=[]):  # Linear's own init must not touch global RNG
            for h in hidden:
                layers += [nn.Linear(width, h), nn.Tanh()]
                width = h
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, 2)
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / float(np.sqrt(layer.in_features))
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
            self.head.weight.zero_()
            self.head.bias.zero_()

    @property
    def n_features(self) -> int:
        return int(self.state_mean.shape[0]) - 1

    @staticmethod
    def orient_stats(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the oriented training states [n, n_features]; a constant column
        gets std 1."""
        z = orient(torch.as_tensor(np.asarray(state, dtype=np.float64))).numpy()
        mean, std = z.mean(axis=0), z.std(axis=0)
        return mean, np.where(std > 0, std, 1.0)

    def concentrations(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(α, β), each [n], both > 1, for raw (unstandardized) states [n, n_features]."""
        z = (orient(state) - self.state_mean) / self.state_std
        out = F.softplus(self.head(self.body(z))) + 1.0
        return out[:, 0], out[:, 1]

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Deterministic action 2·α/(α + β) ∈ (0, 2), shape [n]."""
        alpha, beta = self.concentrations(state)
        return ACTION_MAX * alpha / (alpha + beta)

    def sample(self, state: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """n stochastic actions 2·x, x ~ Beta(α, β), per state: [n_states, n] in [0, 2]."""
        alpha, beta = self.concentrations(state)
        return ACTION_MAX * sample_beta(alpha, beta, n, generator)
