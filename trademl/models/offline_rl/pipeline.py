"""Train an offline RL sizing policy on logged trajectories and judge it.

The log is split by decision session: the policy trains on the earlier sessions (only rows
whose reward was known before the first test session), and is judged on the later ones
twice — by off-policy evaluation on the logged test episodes (the doubly robust lower
confidence bound must clear the behaviour policy's value + a margin), and by replaying it
through the environment on those sessions against the baseline book (bucket 1.0): its
per-session reward improvement must be positive with a t-stat over the bar. A random policy
and the baseline itself fail; NaN anywhere fails closed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from trademl.config import OfflineRLPromotionConfig
from trademl.models.gate import Decision
from trademl.models.offline_rl.env import RewardConfig, replay
from trademl.models.offline_rl.ope import OPEReport, evaluate
from trademl.models.offline_rl.promotion import decide
from trademl.models.offline_rl.trajectories import to_transitions

__all__ = ["Judged", "OfflineRLParams", "fit_policy", "judge", "split_log"]


@dataclass(frozen=True)
class OfflineRLParams:
    """Training and gate settings (see `trademl.config.OfflineRLConfig`)."""

    algo: Literal["cql", "iql", "dt"] = "cql"
    n_steps: int = 2000
    batch_size: int = 256
    gamma: float = 0.9
    test_frac: float = 0.3
    n_boot: int = 1000
    level: float = 0.9
    margin: float = 0.0
    min_improvement_t: float = 2.0
    seed: int = 0
    #: CQL's conservatism (its penalty on actions the log rarely took) on scaled rewards.
    cql_alpha: float = 0.01
    #: Rewards are scaled so the largest |reward| is this: TD errors stay mostly inside the
    #: Huber loss's quadratic region, so Q estimates means — the loss penalty skews rewards,
    #: and a Huber fit in its linear region would learn medians and miss the tail it prices.
    reward_headroom: float = 2.5
    #: dt: the return it is asked for, as a quantile of the logged rewards.
    dt_target_quantile: float = 0.9


@dataclass
class Judged:
    """A judged policy: its OPE report, the replay against the baseline, and the verdict."""

    report: OPEReport
    decision: Decision
    metrics: dict[str, float] = field(default_factory=dict)


def _renumber(log: pl.DataFrame) -> pl.DataFrame:
    """Steps 0, 1, … within each episode of a subset (a split can start mid-episode)."""
    return log.sort("episode_key", "session").with_columns(
        pl.int_range(pl.len()).over("episode_key").alias("step")
    )


def split_log(
    log: pl.DataFrame, *, test_frac: float, lag: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test) by decision session; train keeps only rows whose reward was known
    before the first test session, so nothing it learns from overlaps the test's outcomes."""
    sessions = log.get_column("session").unique().sort()
    if sessions.len() < 4:
        raise ValueError(f"the log holds {sessions.len()} sessions; a split needs at least 4")
    first_test = sessions[max(1, math.floor(sessions.len() * (1 - test_frac)))]
    test = log.filter(pl.col("session") >= first_test)
    train = log.filter((pl.col("session") < first_test) & (pl.col("known") < first_test))
    return _renumber(train), _renumber(test)


def fit_policy(
    train: pl.DataFrame, cfg: RewardConfig, params: OfflineRLParams, *, device: str = "cpu:0"
) -> Any:
    """CQL / IQL / the Decision Transformer (d3rlpy, the `rl` extra) on the training log,
    rewards scaled by `reward_headroom`; returns the trained policy (export it with
    `export.export_onnx`)."""
    from trademl.models.offline_rl.algos import train_policy

    data = to_transitions(train, cfg.buckets, cfg.state)
    peak = float(np.abs(data.reward).max()) if data.n else 0.0
    hyper: dict[str, Any] = {"gamma": params.gamma}
    if params.algo == "cql":
        hyper["alpha"] = params.cql_alpha
    return train_policy(
        data,
        params.algo,
        n_steps=params.n_steps,
        batch_size=params.batch_size,
        seed=params.seed,
        device=device,
        threads=1,
        dt_target_quantile=params.dt_target_quantile,
        reward_scale=params.reward_headroom / peak if peak > 0 else 1.0,
        **hyper,
    )


def judge(
    act: Callable[[np.ndarray], np.ndarray],
    probs: Callable[[np.ndarray], np.ndarray],
    test: pl.DataFrame,
    cfg: RewardConfig,
    params: OfflineRLParams,
) -> Judged:
    """OPE on the logged test episodes and a replay against the baseline on the same
    sessions; `act` maps states to bucket indices, `probs` to (N, K) probabilities."""
    data = to_transitions(test, cfg.buckets, cfg.state)
    report = evaluate(
        data,
        probs(data.obs),
        probs(data.next_obs),
        gamma=params.gamma,
        n_boot=params.n_boot,
        level=params.level,
        seed=params.seed,
    )
    baseline = cfg.baseline
    ours = replay(test, cfg, act)
    base = replay(test, cfg, lambda obs: np.full(obs.shape[0], baseline))
    per = (
        ours.select("session", pl.col("reward").alias("policy"))
        .with_columns(base.get_column("reward").alias("baseline"))
        .group_by("session")
        .agg(pl.col("policy").sum(), pl.col("baseline").sum())
        .sort("session")
    )
    d = (per.get_column("policy") - per.get_column("baseline")).to_numpy()
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    t = float(d.mean() / sd * math.sqrt(d.size)) if sd > 0 else math.nan
    metrics: dict[str, Any] = {
        **report.metrics(),
        "replay_policy_bps_per_session": float(per.get_column("policy").mean()),
        "replay_baseline_bps_per_session": float(per.get_column("baseline").mean()),
        "replay_improvement_t": t,
        "replay_sessions": float(d.size),
        "mean_bucket": float(np.mean(np.asarray(cfg.buckets)[ours.get_column("action")])),
    }
    bars = OfflineRLPromotionConfig(
        margin=params.margin, min_improvement_t=params.min_improvement_t
    )
    return Judged(report, decide(metrics, None, bars), metrics)
