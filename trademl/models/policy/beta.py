"""The math of the GRPO sizing policy: Beta log-density and entropy, sampling, the position
rule, per-session PnL and reward, group-relative advantages and the k3 KL estimator.

Everything is vectorized torch (or numpy where noted) with no per-sample Python, so the same
functions serve training, evaluation and the throughput benchmark.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from trademl.models.policy.actions import ACTION_MAX, position

__all__ = [
    "ACTION_MAX",
    "SAMPLE_EPS",
    "beta_entropy",
    "beta_log_prob",
    "beta_log_prob_from_logs",
    "group_advantages",
    "k3_kl",
    "log_beta",
    "position",
    "risk_penalty",
    "sample_beta",
    "sample_gamma",
    "trading_pnl",
]

SAMPLE_EPS = 1e-6  # samples are clamped to [eps, 1 − eps] so log x and log(1 − x) stay finite

T = TypeVar("T", np.ndarray, torch.Tensor)


def trading_pnl(pos: T, y: T, prev_pos: T, cost_bps: float) -> T:
    """Per-position PnL net of costs: pos · y − cost_bps·1e-4 · |pos − prev_pos|.

    `y` is the realized return a position decided at the session earns; `prev_pos` is the
    position held before it (the cost is paid on the change). numpy or torch, broadcasting.
    """
    turnover = (pos - prev_pos).abs() if isinstance(pos, torch.Tensor) else np.abs(pos - prev_pos)
    return pos * y - (cost_bps * 1e-4) * turnover


def risk_penalty(pos: T, vol: T, risk_aversion: float) -> T:
    """Mean-variance penalty (risk_aversion / 2) · pos² · vol², vol in y's per-session units."""
    return (0.5 * risk_aversion) * (pos * pos) * (vol * vol)


def log_beta(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log B(α, β) = lgamma(α) + lgamma(β) − lgamma(α + β)."""
    return torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)


def beta_log_prob_from_logs(
    log_x: torch.Tensor, log1m_x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """Beta(α, β) log-density given precomputed log x and log(1 − x) (fused, no distribution
    object): (α − 1)·log x + (β − 1)·log(1 − x) − log B(α, β). Broadcasts α, β [B, 1] over
    samples [B, G]; the log B term is computed once per state, not per sample.
    """
    return (alpha - 1.0) * log_x + (beta - 1.0) * log1m_x - log_beta(alpha, beta)


def beta_log_prob(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Beta(α, β) log-density of x in (0, 1) (clamped to [SAMPLE_EPS, 1 − SAMPLE_EPS]).

    The log-density of the action 2x differs by the constant −log 2, which cancels in every
    probability ratio the trainer uses.
    """
    x = x.clamp(SAMPLE_EPS, 1.0 - SAMPLE_EPS)
    return beta_log_prob_from_logs(torch.log(x), torch.log1p(-x), alpha, beta)


def beta_entropy(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Differential entropy of Beta(α, β) (of x; the action's is this + log 2)."""
    s = alpha + beta
    return (
        log_beta(alpha, beta)
        - (alpha - 1.0) * torch.digamma(alpha)
        - (beta - 1.0) * torch.digamma(beta)
        + (s - 2.0) * torch.digamma(s)
    )


@torch.no_grad()
def sample_gamma(alpha: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n Gamma(α, 1) draws per row, [M] → [M, n], for α >= 1 (Marsaglia & Tsang 2000).

    Vectorized squeeze-free acceptance: d = α − 1/3, c = 1/√(9d), v = (1 + c·z)³ with z ~ N(0, 1),
    accept d·v when v > 0 and log u < z²/2 + d − d·v + d·log v (u ~ U(0, 1)); rejected cells
    (under 5 % for α >= 1) are redrawn in a few shrinking rounds. Plain tensor ops, so it runs
    on the intra-op threads, unlike torch's serial gamma kernel, and draws only from `generator`.
    """
    d = (alpha - 1.0 / 3.0).unsqueeze(1)
    c = torch.rsqrt(9.0 * d)
    shape = (alpha.shape[0], n)
    z = torch.randn(shape, generator=generator, device=alpha.device)
    u = torch.rand(shape, generator=generator, device=alpha.device)
    v = (c * z).add_(1.0)
    v = v * v * v
    ok = torch.log(u) < 0.5 * z * z + d * (1.0 - v + torch.log(v))  # log v <= 0 is NaN: rejected
    out = (d * v).reshape(-1)
    bad = torch.nonzero(~ok.reshape(-1)).squeeze(1)
    d, c = d.squeeze(1), c.squeeze(1)
    while bad.numel() > 0:
        row = torch.div(bad, n, rounding_mode="floor")
        dd, cc = d[row], c[row]
        z = torch.randn(dd.shape, generator=generator, device=alpha.device)
        u = torch.rand(dd.shape, generator=generator, device=alpha.device)
        v = (1.0 + cc * z) ** 3
        ok = torch.log(u) < 0.5 * z * z + dd * (1.0 - v + torch.log(v))
        out[bad[ok]] = (dd * v)[ok]
        bad = bad[~ok]
    return out.reshape(shape)


def sample_beta(
    alpha: torch.Tensor, beta: torch.Tensor, n: int, generator: torch.Generator
) -> torch.Tensor:
    """n Beta(α, β) draws per state (α, β >= 1), [B] → [B, n] in [SAMPLE_EPS, 1 − SAMPLE_EPS].

    x = g_α / (g_α + g_β) from two `sample_gamma` draws, all from the explicit generator so a
    seed fixes the result (torch.distributions.Beta cannot take a generator).
    """
    g = sample_gamma(torch.cat([alpha, beta]), n, generator)
    ga, gb = g[: alpha.shape[0]], g[alpha.shape[0] :]
    return (ga / (ga + gb)).clamp_(SAMPLE_EPS, 1.0 - SAMPLE_EPS)


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages (r − mean_g) / (std_g + eps) over the last axis [B, G].

    std is the SAMPLE std (ddof = 1), as in DeepSeekMath's GRPO and torch.std's default: with
    G = 8 the population std would understate the spread by √(8/7). A group whose rewards are
    all equal (e.g. a zero forecast, where every size gives a flat book) gets advantage 0.
    Example: rewards [1, 0, 0, 1, 1, 0, 0, 0] → +1.2076 for the 1s and −0.7246 for the 0s.
    """
    g = rewards.shape[-1]
    centred = rewards - rewards.mean(dim=-1, keepdim=True)
    # Written out rather than torch.std: several times faster on the short last axis.
    std = torch.sqrt((centred * centred).sum(dim=-1, keepdim=True) / (g - 1))
    return centred / (std + eps)


def k3_kl(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    """Per-sample k3 estimator of KL(π_θ ‖ π_ref) on actions drawn from π_θ (Schulman 2020):
    ρ − log ρ − 1 with ρ = π_ref(a) / π_θ(a). Non-negative, zero iff the densities agree at a,
    unbiased for the KL in expectation.
    """
    log_ratio = ref_log_prob - log_prob
    return torch.exp(log_ratio) - log_ratio - 1.0
