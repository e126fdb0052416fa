"""Supervised fine-tuning on the teachers, then pairwise ranking reinforcement on realized
returns.

SFT loss = BCE(structure, the structure teacher) + BCE(claims, the claim teacher) +
CE(decision, the return quintile), each logged. RFT draws two theses per example, rewards each
(`reward`), and takes the advantage of the first as ½(R1 − R2) and of the second as its
negative — REINFORCE on the summed log-probability of every head, plus an entropy bonus.
Reward = w_valid · schema validity + w_return · decision sign × the forward return net of the
cost (a hold trades nothing and costs nothing), in units of the training returns' standard
deviation + w_claims · the share of claims that agree with the teacher rules on the features.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trademl.models.theses.model import DECISION_SIGNS
from trademl.models.theses.schema import valid_mask

__all__ = ["ThesisParams", "reward", "rft", "sft"]


@dataclass(frozen=True)
class ThesisParams:
    lr: float = 1e-3
    sft_epochs: int = 20
    rft_epochs: int = 20
    rft_lr: float = 5e-4
    batch_size: int = 512
    entropy: float = 0.01
    w_valid: float = 0.2
    w_return: float = 1.0
    w_claims: float = 0.2
    cost_bps: float = 5.0
    seed: int = 0


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Small networks train fastest on one thread; several oversubscribe a busy host (tens
    of times slower here when other processes compete for the cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


def sft(
    model: Any,
    x: np.ndarray,
    structure: np.ndarray,
    claims: np.ndarray,
    decision: np.ndarray,
    params: ThesisParams,
) -> dict[str, float]:
    """Fit every head to its teacher; the last epoch's mean losses."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    X = torch.as_tensor(x, dtype=torch.float32)
    S = torch.as_tensor(structure, dtype=torch.float32)
    C = torch.as_tensor(claims, dtype=torch.float32)
    D = torch.as_tensor(decision, dtype=torch.long)
    logs: dict[str, float] = {}
    for _ in range(params.sft_epochs):
        sums = np.zeros(3)
        for idx in _batches(len(X), params.batch_size, rng):
            out = model(X[idx])
            parts = (
                F.binary_cross_entropy_with_logits(out["structure_logits"], S[idx]),
                F.binary_cross_entropy_with_logits(out["claims_logits"], C[idx]),
                F.cross_entropy(out["decision_logits"], D[idx]),
            )
            loss = parts[0] + parts[1] + parts[2]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += np.array([p.item() for p in parts]) * len(idx)
        logs = dict(
            zip(
                ("sft_bce_structure", "sft_bce_claims", "sft_ce_decision"),
                sums / len(X),
                strict=True,
            )
        )
    return logs


def reward(
    structure: np.ndarray,
    claims: np.ndarray,
    decision: np.ndarray,
    fwd: np.ndarray,
    teacher_claims: np.ndarray,
    params: ThesisParams,
    scale: float,
) -> np.ndarray:
    """Per-example reward of sampled theses (module docstring)."""
    sign = DECISION_SIGNS[np.asarray(decision, dtype=np.int64)]
    net = sign * fwd - np.abs(sign) * params.cost_bps * 1e-4
    agree = (np.asarray(claims) > 0.5) == (np.asarray(teacher_claims) > 0.5)
    return (
        params.w_valid * valid_mask(structure, claims).astype(np.float64)
        + params.w_return * net / scale
        + params.w_claims * agree.mean(axis=1)
    )


def rft(
    model: Any,
    x: np.ndarray,
    fwd: np.ndarray,
    teacher_claims: np.ndarray,
    params: ThesisParams,
) -> dict[str, float]:
    """Pairwise ranking REINFORCE (module docstring); the last epoch's mean reward."""
    import torch

    torch.manual_seed(params.seed + 1)
    gen = torch.Generator().manual_seed(params.seed + 1)
    rng = np.random.default_rng(params.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=params.rft_lr)
    X = torch.as_tensor(x, dtype=torch.float32)
    scale = float(np.std(fwd)) or 1.0
    logs: dict[str, float] = {}
    for _ in range(params.rft_epochs):
        total, seen, valid = 0.0, 0, 0.0
        for idx in _batches(len(X), params.batch_size, rng):
            a, b = model.sample(X[idx], gen), model.sample(X[idx], gen)
            r = [
                reward(
                    s["structure"].numpy(),
                    s["claims"].numpy(),
                    s["decision"].numpy(),
                    fwd[idx],
                    teacher_claims[idx],
                    params,
                    scale,
                )
                for s in (a, b)
            ]
            adv = torch.as_tensor(0.5 * (r[0] - r[1]), dtype=torch.float32)
            loss = -(adv * a["log_prob"] - adv * b["log_prob"]).mean()
            loss = loss - params.entropy * 0.5 * (a["entropy"] + b["entropy"]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(r[0].sum() + r[1].sum()) / 2
            valid += float(valid_mask(a["structure"].numpy(), a["claims"].numpy()).sum())
            seen += len(idx)
        logs = {"rft_mean_reward": total / seen, "rft_sample_validity": valid / seen}
    return logs
