"""GRPO (group-relative policy optimization) for position sizing.

For each state in a batch the policy draws G sizes; each is scored on the state's realized
return, reward = pos·y − cost_bps·1e-4·|pos − prev_ref| − (risk_aversion/2)·pos²·vol², with
pos = size·sign(y_hat). Advantages are the rewards standardized within the group (no value
network). The update maximizes the PPO clipped surrogate on the probability ratio to the
sampling policy minus kl_beta · k3-KL to a frozen reference (the initial, constant-size-1
policy), plus an optional entropy bonus, for several inner epochs with the sampling
log-probs held fixed. Training stops early on the validation Sharpe (sessions after training).

Cost reference: states in a batch are independent, so a sampled size has no true previous
position. With cost_reference="previous" the previous position is the current deterministic
policy's position for that symbol's previous session, recomputed at the start of every epoch
(at convergence it equals the position actually held); "zero" charges cost on |pos| (a full
round trip every session, conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from trademl.models.policy.beta import (
    ACTION_MAX,
    beta_entropy,
    group_advantages,
    log_beta,
    risk_penalty,
    sample_beta,
    trading_pnl,
)
from trademl.models.policy.network import BetaPolicyNet

__all__ = ["Batch", "GRPOParams", "grpo_loss", "grpo_update", "make_optimizer"]


@dataclass(frozen=True)
class GRPOParams:
    """Hyperparameters of the GRPO sizing policy.

    Returns (y) and vol are per session; cost_bps is charged per unit of |Δposition|.
    epochs are passes over the training states; each batch of batch_size states draws
    group_size actions per state and takes inner_epochs optimizer steps on them. Early stopping
    keeps the epoch with the best validation Sharpe and stops after `patience` epochs without
    a new best. val_frac of the sessions (the latest) validate; val_embargo sessions before them
    are dropped. num_threads, when set, is torch's intra-op thread count during fit (restored
    afterwards); None leaves torch's setting alone.
    """

    group_size: int = 8
    lr: float = 3e-3
    epochs: int = 30
    batch_size: int = 4096
    inner_epochs: int = 2
    clip_eps: float = 0.2
    kl_beta: float = 0.01
    entropy_coef: float = 0.0
    cost_bps: float = 5.0
    risk_aversion: float = 2.0
    cost_reference: Literal["previous", "zero"] = "previous"
    hidden: tuple[int, ...] = (32, 32)
    patience: int = 5
    val_frac: float = 0.2
    val_embargo: int = 2
    max_grad_norm: float = 1.0
    adv_eps: float = 1e-6
    periods_per_year: float = 252.0
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "group_size >= 2": self.group_size >= 2,
            "lr > 0": self.lr > 0,
            "epochs >= 1": self.epochs >= 1,
            "batch_size >= 1": self.batch_size >= 1,
            "inner_epochs >= 1": self.inner_epochs >= 1,
            "clip_eps > 0": self.clip_eps > 0,
            "kl_beta >= 0": self.kl_beta >= 0,
            "entropy_coef >= 0": self.entropy_coef >= 0,
            "cost_bps >= 0": self.cost_bps >= 0,
            "risk_aversion >= 0": self.risk_aversion >= 0,
            "cost_reference in ('previous', 'zero')": self.cost_reference in ("previous", "zero"),
            "hidden non-empty, widths >= 1": len(self.hidden) > 0 and min(self.hidden) >= 1,
            "patience >= 1": self.patience >= 1,
            "0 < val_frac < 1": 0 < self.val_frac < 1,
            "val_embargo >= 0": self.val_embargo >= 0,
            "max_grad_norm > 0": self.max_grad_norm > 0,
            "num_threads None or >= 1": self.num_threads is None or self.num_threads >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid GRPOParams: expected {', '.join(bad)}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


class Batch(NamedTuple):
    """Training states on the device: raw state [B, F]; [B] y, vol, the exposure a size of 1
    holds (sign(y_hat), or a book's target weight), the cost's reference previous position,
    and the frozen reference policy's Beta (α, β) per state."""

    state: torch.Tensor
    y: torch.Tensor
    vol: torch.Tensor
    sign: torch.Tensor
    prev_pos: torch.Tensor
    ref_alpha: torch.Tensor
    ref_beta: torch.Tensor


def make_optimizer(net: BetaPolicyNet, params: GRPOParams) -> torch.optim.Optimizer:
    """Adam on the policy (foreach kernels: one fused pass over the few parameter tensors)."""
    return torch.optim.Adam(net.parameters(), lr=params.lr, foreach=True)


class _Fixed(NamedTuple):
    """Per-batch constants of the inner epochs: sample logs, the old policy, advantages."""

    log_x: torch.Tensor  # [B, G] log x of the sampled x = action / 2
    log1m_x: torch.Tensor  # [B, G] log(1 − x)
    old_alpha: torch.Tensor  # [B, 1] sampling policy
    old_beta: torch.Tensor
    old_lbeta: torch.Tensor
    ref_minus_old: torch.Tensor  # [B, G] log π_ref(a) − log π_old(a)
    adv: torch.Tensor  # [B, G]
    lower: torch.Tensor  # [B, G] ratio clamp bounds that implement min(ρA, clip(ρ)A)
    upper: torch.Tensor


class _GRPOLoss(torch.autograd.Function):
    """Fused per-sample GRPO loss with a hand-written gradient w.r.t. the per-state (α, β).

    loss = −mean(min(ρA, clip(ρ)A)) + kl_beta·mean(k3), ρ = π/π_old; with log π = (α−1)·log x
    + (β−1)·log(1−x) − log B(α, β). For A >= 0 the min is A·min(ρ, 1+ε), for A < 0 it is
    A·max(ρ, 1−ε): a clamp with per-sample bounds, whose gradient passes where ρ is not
    clamped. ∂loss/∂log π = (−A·ρ·[unclamped] + kl_beta·(1 − π_ref/π)) / (B·G), and
    ∂log π/∂α = log x − ψ(α) + ψ(α+β) (β alike), so backward is three row sums computed in
    forward: no [B, G] intermediate is kept for autograd.
    """

    @staticmethod
    def forward(ctx, alpha, beta, fx: _Fixed, kl_beta: float):  # type: ignore[override]
        alpha, beta = alpha.unsqueeze(1), beta.unsqueeze(1)
        lb = log_beta(alpha, beta)
        log_ratio = fx.log_x * (alpha - fx.old_alpha)
        log_ratio.addcmul_(fx.log1m_x, beta - fx.old_beta).sub_(lb - fx.old_lbeta)
        ratio = torch.exp(log_ratio)
        clamped = torch.clamp(ratio, fx.lower, fx.upper)
        surrogate = torch.sum(clamped * fx.adv)
        log_ref = fx.ref_minus_old - log_ratio  # log π_ref − log π
        ref_over = torch.exp(log_ref)
        n = float(log_ratio.numel())
        kl_sum = torch.sum(ref_over) - torch.sum(log_ref) - n
        loss = (kl_beta * kl_sum - surrogate) / n
        # g = ∂loss/∂log π per sample, scaled by n
        g = torch.where(clamped == ratio, ratio * fx.adv, 0.0).neg_()
        g.add_(ref_over, alpha=-kl_beta).add_(kl_beta)
        s = alpha + beta
        dig_s = torch.digamma(s)
        g_sum = g.sum(dim=1, keepdim=True)
        grad_a = (g * fx.log_x).sum(dim=1, keepdim=True) - (torch.digamma(alpha) - dig_s) * g_sum
        grad_b = (g * fx.log1m_x).sum(dim=1, keepdim=True) - (torch.digamma(beta) - dig_s) * g_sum
        ctx.save_for_backward((grad_a / n).squeeze(1), (grad_b / n).squeeze(1))
        kl, clip_frac = kl_sum / n, (clamped != ratio).float().mean()
        ctx.mark_non_differentiable(kl, clip_frac)  # monitoring only
        return loss, kl, clip_frac

    @staticmethod
    def backward(ctx, grad_loss, _grad_kl, _grad_clip):  # type: ignore[override]
        grad_a, grad_b = ctx.saved_tensors
        return grad_loss * grad_a, grad_loss * grad_b, None, None


def grpo_loss(
    alpha: torch.Tensor, beta: torch.Tensor, fx: _Fixed, kl_beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, mean k3 KL, clip fraction) for per-state α, β [B] against the batch constants."""
    return _GRPOLoss.apply(alpha, beta, fx, kl_beta)


def prepare(
    alpha: torch.Tensor, beta: torch.Tensor, batch: Batch, params: GRPOParams, gen: torch.Generator
) -> tuple[_Fixed, torch.Tensor]:
    """Sample G sizes per state from Beta(α, β) (detached), score them, and fix the constants
    of the inner epochs. Returns (constants, mean reward)."""
    with torch.no_grad():
        a, b = alpha.detach(), beta.detach()
        x = sample_beta(a, b, params.group_size, gen)  # [B, G]
        log_x, log1m_x = torch.log(x), torch.log1p(-x)
        a, b = a.unsqueeze(1), b.unsqueeze(1)
        ra, rb = batch.ref_alpha.unsqueeze(1), batch.ref_beta.unsqueeze(1)
        old_lb, ref_lb = log_beta(a, b), log_beta(ra, rb)
        ref_minus_old = log_x * (ra - a)
        ref_minus_old.addcmul_(log1m_x, rb - b).sub_(ref_lb - old_lb)
        pos = ACTION_MAX * x * batch.sign.unsqueeze(1)  # size · exposure
        reward = trading_pnl(
            pos, batch.y.unsqueeze(1), batch.prev_pos.unsqueeze(1), params.cost_bps
        )
        reward.sub_(risk_penalty(pos, batch.vol.unsqueeze(1), params.risk_aversion))
        adv = group_advantages(reward, params.adv_eps)
        neg = adv < 0
        inf = torch.tensor(math.inf, dtype=adv.dtype, device=adv.device)
        lower = torch.where(neg, 1.0 - params.clip_eps, -inf)
        upper = torch.where(neg, inf, 1.0 + params.clip_eps)
    fx = _Fixed(log_x, log1m_x, a, b, old_lb, ref_minus_old, adv, lower, upper)
    return fx, reward.mean()


def grpo_update(
    net: BetaPolicyNet,
    opt: torch.optim.Optimizer,
    batch: Batch,
    params: GRPOParams,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """One GRPO step on a batch: sample G sizes per state, score, then inner_epochs updates.

    The first inner epoch's forward pass also provides the sampling policy (same weights), so
    its ratio is exactly 1. Returns detached scalar tensors (loss, kl, clip_frac, entropy,
    reward) of the last inner epoch, left on the device for the caller to synchronize.
    """
    alpha, beta = net.concentrations(batch.state)
    fx, reward = prepare(alpha, beta, batch, params, generator)
    ent = torch.tensor(math.nan)
    for k in range(params.inner_epochs):
        if k > 0:
            alpha, beta = net.concentrations(batch.state)
        loss, kl, clip_frac = grpo_loss(alpha, beta, fx, params.kl_beta)
        if params.entropy_coef > 0:
            ent = beta_entropy(alpha, beta).mean()
            loss = loss - params.entropy_coef * ent
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), params.max_grad_norm, foreach=True)
        opt.step()
    return {
        "loss": loss.detach(),
        "kl": kl.detach(),
        "clip_frac": clip_frac,
        "entropy": ent.detach(),
        "reward": reward,
    }


def init_generator(params: GRPOParams) -> torch.Generator:
    """The run's single random stream (init, shuffling, sampling), seeded by params.seed."""
    return torch.Generator(device=params.device).manual_seed(params.seed)


def reference_concentrations(
    net: BetaPolicyNet, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference policy's Beta (α, β) for every training state, computed once: the
    reference is frozen, so its per-state parameters never change during training."""
    with torch.inference_mode():
        alpha, beta = net.concentrations(state)
    return alpha.clone(), beta.clone()


def previous_reference(
    net: BetaPolicyNet, state: torch.Tensor, sign: torch.Tensor, prev_idx: torch.Tensor
) -> torch.Tensor:
    """The deterministic policy's position at each row's previous session (0 if none)."""
    with torch.inference_mode():
        pos = net(state) * sign
        prev = torch.where(prev_idx >= 0, pos[prev_idx.clamp_min(0)], torch.zeros_like(pos))
    return prev.clone()


def numpy_state(x: np.ndarray, device: str) -> torch.Tensor:
    """float32 tensor of a numpy array on the device."""
    return torch.as_tensor(np.array(x, dtype=np.float32), device=device)
