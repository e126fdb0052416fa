"""The off-policy estimators and the episode bootstrap, as plain functions of arrays (numpy
only); `ope.py` assembles them into the report and the gate and documents the estimators.

Notation: ρ_t = π_e(a_t|s_t) / π_b(a_t|s_t), w_t = ρ_0 ⋯ ρ_t within an episode, w_{−1} = 1,
t the position within the episode (0 at its first logged row), T_i episode i's length.

Layout: episodes are ranked longest first and rows put in step-major order, so the episodes
still running at step t are ranks 0 … M_t − 1. Every estimator is then a function of
per-episode sums and per-step sums; a bootstrap replicate is a vector of multinomial episode
counts c, a linear estimate c·x / Σc, and a self-normalized one needs the per-step sums c·x_t,
computed as a few well-shaped matrix products over bins of consecutive steps.

Self-normalized estimators use the fixed-horizon convention: an episode that has ended sits in
an absorbing state with zero reward and value and keeps its last weight, so step t's
normalizer is Σ_i w_{i, min(t, T_i−1)}. A step at which every weight is exactly 0 contributes
its numerator, 0, instead of 0/0; NaN is never masked and propagates to every estimate.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EpisodeLayout",
    "Replicates",
    "bootstrap_counts",
    "bootstrap_replicates",
    "cumulative_weights",
    "dr_estimate",
    "effective_sample_size",
    "episode_layout",
    "fqe_estimate",
    "importance_ratios",
    "is_estimate",
    "on_policy_value",
    "pdis_estimate",
    "percentile_interval",
    "sndr_estimate",
    "wis_estimate",
    "wpdis_estimate",
]

_BOOT_CELLS = 1 << 22  # replicates × episodes per block of bootstrap counts (32 MB float64)


# ---------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class EpisodeLayout:
    """Where each logged row sits: episode rank and position, plus a step-major order.

    Episodes are ranked longest first, so the episodes still running at position t are ranks
    0 … M_t − 1 and step t's rows form one contiguous block `order[offsets[t]:offsets[t+1]]`,
    in rank order — what makes per-step sums one matrix product on a prefix of the columns.

    starts, lengths : (M,) first row and length of each episode, by rank.
    rank, pos : (N,) each row's episode rank and position within its episode.
    order : (N,) rows in step-major order; offsets : (H + 1,) block boundaries in `order`.
    appearance : (M,) the rank of each episode in order of first appearance in the rows.
    """

    starts: np.ndarray
    lengths: np.ndarray
    rank: np.ndarray
    pos: np.ndarray
    order: np.ndarray
    offsets: np.ndarray
    appearance: np.ndarray

    @property
    def n_episodes(self) -> int:
        return int(self.starts.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def running(self, t: int) -> int:
        """M_t: how many episodes have a row at position t."""
        return int(self.offsets[t + 1] - self.offsets[t])


def episode_layout(episode: np.ndarray) -> EpisodeLayout:
    """Index the episodes of (N,) ids whose rows are contiguous and in step order (as
    `Transitions` stores them); raises if an id appears in two separate blocks."""
    episode = np.asarray(episode)
    n = episode.shape[0]
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return EpisodeLayout(e, e, e, e, e, np.zeros(1, dtype=np.int64), e)
    first = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    if np.unique(episode[first]).shape[0] != first.shape[0]:
        raise ValueError("OPE: each episode's rows must be contiguous (an id appears twice)")
    lengths_app = np.diff(np.r_[first, n])
    by_rank = np.argsort(-lengths_app, kind="stable")  # rank → appearance index
    appearance = np.empty_like(by_rank)
    appearance[by_rank] = np.arange(by_rank.shape[0])
    starts, lengths = first[by_rank], lengths_app[by_rank]
    block = np.repeat(np.arange(first.shape[0]), lengths_app)  # appearance index of each row
    rank = appearance[block]
    pos = np.arange(n) - first[block]
    running = np.searchsorted(-lengths, -np.arange(int(lengths[0])), side="left")
    offsets = np.r_[0, np.cumsum(running)]
    t_of = np.repeat(np.arange(running.shape[0]), running)
    order = starts[np.arange(n) - offsets[t_of]] + t_of
    return EpisodeLayout(starts, lengths, rank, pos, order, offsets, appearance)


# ------------------------------------------------------------------------------- weights


def importance_ratios(
    target_probs: np.ndarray, behaviour_probs: np.ndarray, action: np.ndarray
) -> np.ndarray:
    """ρ_t = π_e(a_t|s_t) / π_b(a_t|s_t) from (N, K) probability tables; a zero behaviour
    probability gives inf or NaN (never a silent 0)."""
    rows = np.arange(np.asarray(action).shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            np.asarray(target_probs, dtype=np.float64)[rows, action]
            / np.asarray(behaviour_probs, dtype=np.float64)[rows, action]
        )


def _weights_step_major(layout: EpisodeLayout, rho: np.ndarray) -> np.ndarray:
    """Cumulative weights w_t in step-major order (block t extends block t − 1's prefix)."""
    w = np.asarray(rho, dtype=np.float64)[layout.order]
    off = layout.offsets
    for t in range(1, layout.horizon):
        m = layout.running(t)
        w[off[t] : off[t] + m] *= w[off[t - 1] : off[t - 1] + m]
    return w


def cumulative_weights(rho: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """w_t = ρ_0 ⋯ ρ_t within each episode, in row order."""
    layout = episode_layout(episode)
    out = np.empty(layout.order.shape[0])
    out[layout.order] = _weights_step_major(layout, rho)
    return out


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's (Σ w)² / Σ w²: how many equally weighted episodes the weights are worth."""
    w = np.asarray(weights, dtype=np.float64)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else (0.0 if np.isfinite(s2) else math.nan)


# ---------------------------------------------------------------------------- estimators


@dataclass(frozen=True)
class _Columns:
    """Per-episode sums (by rank) and per-step blocks (step-major) that every estimator and
    every bootstrap replicate is a function of."""

    episode: np.ndarray  # (M, 6): w_T·G, w_T, PDIS_i, DR_i, V̂(s_0), G_i
    final_weight: np.ndarray  # (M,) w_T, the episode's last cumulative weight
    # Consecutive steps batched into bins: (m, (m, L·5)) = the first bin step's running
    # episodes and, per step, the 5 columns γ^t w r, γ^t w (r − Q̂), γ^t w_{t−1} V̂, w, w_T,
    # zero-padded for episodes that ended inside the bin (zeros add nothing to any sum).
    bins: list[tuple[int, np.ndarray]]
    head: np.ndarray  # (M, 7 + L₀·5): episode columns, ones, the first bin (all run at t = 0)


_BIN_PAD = 1.5  # a bin's width m may exceed a step's running episodes by this factor
_BIN_CELLS = 1 << 22  # cells per bin matrix
_BIN_STEPS = 1024  # steps per bin (bounds the (B, L, 5) products)


def _step_bins(layout: EpisodeLayout, step: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Group consecutive steps whose running episodes are within `_BIN_PAD` of the bin's
    first step into one zero-padded matrix, so the bootstrap does one well-shaped matrix
    product per bin (a handful, log-many in the spread of episode lengths) instead of one
    skinny product per step — the products read the counts matrix once per bin."""
    bins, t, h = [], 0, layout.horizon
    off = layout.offsets
    while t < h:
        m0 = layout.running(t)
        end = t + 1
        while (
            end < h
            and layout.running(end) * _BIN_PAD >= m0
            and end - t < _BIN_STEPS
            and (end - t + 1) * m0 * 5 <= _BIN_CELLS
        ):
            end += 1
        x = np.zeros((m0, end - t, 5))
        for j, tt in enumerate(range(t, end)):
            m = layout.running(tt)
            x[:m, j] = step[off[tt] : off[tt] + m]
        bins.append((m0, x.reshape(m0, -1)))
        t = end
    return bins


def _columns(
    layout: EpisodeLayout,
    reward: np.ndarray,
    rho: np.ndarray,
    q_taken: np.ndarray,
    v: np.ndarray,
    gamma: float,
) -> _Columns:
    o, off = layout.order, layout.offsets
    w = _weights_step_major(layout, rho)
    w_prev = np.ones_like(w)
    for t in range(1, layout.horizon):
        m = layout.running(t)
        w_prev[off[t] : off[t] + m] = w[off[t - 1] : off[t - 1] + m]
    t_of = layout.pos[o]
    rank = layout.rank[o]
    disc = float(gamma) ** t_of
    r, q, vv = (np.asarray(x, dtype=np.float64)[o] for x in (reward, q_taken, v))
    final = w[off[layout.lengths - 1] + np.arange(layout.n_episodes)]
    step = np.column_stack([disc * w * r, disc * w * (r - q), disc * w_prev * vv, w, final[rank]])
    m_ep = layout.n_episodes

    def per_episode(x: np.ndarray) -> np.ndarray:
        return np.bincount(rank, weights=x, minlength=m_ep)

    ret = per_episode(disc * r)
    dr = per_episode(step[:, 1] + step[:, 2])
    v0 = vv[: layout.running(0)] if layout.horizon else np.zeros(0)
    episode = np.column_stack([final * ret, final, per_episode(step[:, 0]), dr, v0, ret])
    bins = _step_bins(layout, step)
    head = np.column_stack([episode, np.ones(m_ep), *([bins[0][1]] if bins else [])])
    return _Columns(episode, final, bins, head)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, with num itself (0 unless NaN) where den is exactly 0 (see module doc)."""
    out = np.array(num, dtype=np.float64, copy=True)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _estimates(layout: EpisodeLayout, cols: _Columns, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every estimator for each row of `counts` (B, M), episode multiplicities by rank.

    counts = ones((1, M)) gives the point estimates; a bootstrap replicate is a row of
    multinomial counts. NaN anywhere in the data reaches every replicate (0 × NaN = NaN).
    """
    # every episode runs at t = 0: its sums, Σc and the first bin share one pass over counts
    first = counts @ cols.head
    lin, n = first[:, :6], first[:, 6]
    total_final = lin[:, 1]
    out = {
        "is": lin[:, 0] / n,
        "wis": _ratio(lin[:, 0], total_final),
        "pdis": lin[:, 2] / n,
        "fqe": lin[:, 4] / n,
        "dr": lin[:, 3] / n,
        "behaviour": lin[:, 5] / n,
    }
    b = counts.shape[0]
    wpdis = np.zeros(b)
    sndr = np.zeros(b)
    norm_prev = n
    for i, (m, x) in enumerate(cols.bins):
        s = (first[:, 7:] if i == 0 else counts[:, :m] @ x).reshape(b, -1, 5)
        # running episodes' w_t + finished ones' last weights (absorbing convention)
        norm = s[..., 3] + (total_final[:, None] - s[..., 4])
        prev = np.concatenate([norm_prev[:, None], norm[:, :-1]], axis=1)
        wpdis += _ratio(s[..., 0], norm).sum(axis=1)
        sndr += (_ratio(s[..., 1], norm) + _ratio(s[..., 2], prev)).sum(axis=1)
        norm_prev = norm[:, -1]
    out["wpdis"] = wpdis
    out["sndr"] = sndr
    return out


def _point(
    reward: np.ndarray,
    rho: np.ndarray,
    episode: np.ndarray,
    gamma: float,
    q_taken: np.ndarray | None = None,
    v: np.ndarray | None = None,
) -> dict[str, float]:
    layout = episode_layout(episode)
    zero = np.zeros(np.asarray(reward).shape[0])
    cols = _columns(
        layout,
        reward,
        rho,
        zero if q_taken is None else q_taken,
        zero if v is None else v,
        gamma,
    )
    est = _estimates(layout, cols, np.ones((1, layout.n_episodes)))
    return {k: float(x[0]) for k, x in est.items()}


def is_estimate(reward: np.ndarray, rho: np.ndarray, episode: np.ndarray, *, gamma: float) -> float:
    """Trajectory IS: mean over episodes of w_{T−1} Σ_t γ^t r_t."""
    return _point(reward, rho, episode, gamma)["is"]


def wis_estimate(
    reward: np.ndarray, rho: np.ndarray, episode: np.ndarray, *, gamma: float
) -> float:
    """Weighted (self-normalized) trajectory IS: Σ_i w_i G_i / Σ_i w_i."""
    return _point(reward, rho, episode, gamma)["wis"]


def pdis_estimate(
    reward: np.ndarray, rho: np.ndarray, episode: np.ndarray, *, gamma: float
) -> float:
    """Per-decision IS: mean over episodes of Σ_t γ^t w_t r_t (a reward is weighted only by
    the decisions that preceded it, so lower variance than trajectory IS)."""
    return _point(reward, rho, episode, gamma)["pdis"]


def wpdis_estimate(
    reward: np.ndarray, rho: np.ndarray, episode: np.ndarray, *, gamma: float
) -> float:
    """Weighted per-decision IS: Σ_t γ^t Σ_i w_it r_it / Σ_i w̃_it (absorbing convention)."""
    return _point(reward, rho, episode, gamma)["wpdis"]


def dr_estimate(
    reward: np.ndarray,
    rho: np.ndarray,
    q_taken: np.ndarray,
    v: np.ndarray,
    episode: np.ndarray,
    *,
    gamma: float,
) -> float:
    """Per-decision doubly robust: mean over episodes of
    Σ_t γ^t [w_t (r_t − Q̂(s_t, a_t)) + w_{t−1} V̂(s_t)], with V̂(s) = Σ_a π_e(a|s) Q̂(s, a)."""
    return _point(reward, rho, episode, gamma, q_taken, v)["dr"]


def sndr_estimate(
    reward: np.ndarray,
    rho: np.ndarray,
    q_taken: np.ndarray,
    v: np.ndarray,
    episode: np.ndarray,
    *,
    gamma: float,
) -> float:
    """Self-normalized (weighted) DR: Σ_t γ^t [Σ_i w_it (r_it − Q̂_it) / W_t
    + Σ_i w_i,t−1 V̂_it / W_{t−1}], W_t = Σ_i w̃_it, W_{−1} = number of episodes."""
    return _point(reward, rho, episode, gamma, q_taken, v)["sndr"]


def fqe_estimate(v: np.ndarray, episode: np.ndarray) -> float:
    """Direct method: mean of V̂ at each episode's first logged state."""
    layout = episode_layout(episode)
    return float(np.mean(np.asarray(v, dtype=np.float64)[layout.starts]))


def on_policy_value(reward: np.ndarray, episode: np.ndarray, *, gamma: float) -> float:
    """The behaviour policy's own value: mean over episodes of Σ_t γ^t r_t."""
    n = np.asarray(reward).shape[0]
    return _point(reward, np.ones(n), episode, gamma)["behaviour"]


# ----------------------------------------------------------------------------- bootstrap


def bootstrap_counts(n_episodes: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, M) multinomial counts: how often each episode is drawn when M are drawn with
    replacement (one row per bootstrap replicate)."""
    out = np.empty((n_boot, n_episodes))
    # 32-bit draws where they fit: numpy's bounded int64 path costs ~5× as much per draw
    dtype = np.int32 if n_episodes < 2**31 else np.int64
    for b in range(n_boot):  # row by row: no offset pass, the counts stay in cache
        draws = rng.integers(0, n_episodes, size=n_episodes, dtype=dtype)
        out[b] = np.bincount(draws, minlength=n_episodes)
    return out


@dataclass(frozen=True)
class Replicates:
    """Point estimates and bootstrap replicates of every estimator (and "behaviour").

    point : {name: value on the data as logged}; replicates : {name: (B,) values}.
    final_weights : (M,) each episode's last cumulative importance weight, by rank.
    """

    point: dict[str, float]
    replicates: dict[str, np.ndarray]
    final_weights: np.ndarray


def bootstrap_replicates(
    reward: np.ndarray,
    rho: np.ndarray,
    q_taken: np.ndarray,
    v: np.ndarray,
    episode: np.ndarray,
    *,
    gamma: float,
    n_boot: int = 1000,
    seed: int = 0,
    counts: np.ndarray | None = None,
) -> Replicates:
    """Every estimator on the data and on `n_boot` bootstrap resamples of whole episodes.

    counts : optional (B, M) episode multiplicities in order of the episodes' first appearance
        (for tests); by default `bootstrap_counts` drawn in blocks of ≈ 4 M cells so memory
        stays bounded, each block from its own stream spawned from `seed` and the blocks
        spread over the cores (the block size depends on M only, so a seed always gives the
        same replicates, on any number of cores).
    """
    layout = episode_layout(episode)
    cols = _columns(layout, reward, rho, q_taken, v, gamma)
    m = layout.n_episodes
    point = {k: float(x[0]) for k, x in _estimates(layout, cols, np.ones((1, m))).items()}
    if counts is not None:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != m:
            raise ValueError(f"bootstrap: counts {counts.shape} must be (B, {m})")
        given = _estimates(layout, cols, counts[:, np.argsort(layout.appearance)])  # by rank
        return Replicates(point, given, cols.final_weight)
    size = max(1, _BOOT_CELLS // max(m, 1))
    starts = range(0, n_boot, size)
    # one stream per block, spawned from `seed`: the replicates depend on the seed and the
    # block size (a function of M) only, not on how many threads draw them
    streams = np.random.SeedSequence(seed).spawn(len(starts))

    def block(i: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(streams[i])
        return _estimates(layout, cols, bootstrap_counts(m, min(size, n_boot - starts[i]), rng))

    # the draws, the counting and the products release the GIL: blocks run on every core
    workers = min(len(starts), os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(block, range(len(starts))))
    else:
        parts = [block(i) for i in range(len(starts))]
    reps = {k: np.concatenate([p[k] for p in parts]) for k in point}
    return Replicates(point, reps, cols.final_weight)


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Two-sided percentile interval at `level`; NaN if any replicate is not finite (fail
    closed rather than drop the bad ones)."""
    r = np.asarray(replicates, dtype=np.float64)
    if r.size == 0 or not np.isfinite(r).all():
        return math.nan, math.nan
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
