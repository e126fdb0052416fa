"""Logged trajectories: the baseline book's decisions with documented exploration.

The behaviour policy holds the baseline bucket (1.0 × the target weight, the book the
platform trades) with probability 1 − ε and a uniformly random bucket with probability ε,
so every bucket has probability ≥ ε/K — what importance sampling and doubly robust
estimates need. Its probabilities are logged beside each action. A row's exploration draw
is a hash of (seed, session, symbol), not a stream: a row never changes when later sessions
are appended, and re-logging the same session gives the same rows.

The logged bucket is booked against the realized return the backtest would have earned
(`env.reward`), so the log is counterfactual exploration around the traded book: the cost
model prices the trades, market impact beyond it is not simulated.
"""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl

from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.env import STATE, RewardConfig, position, reward

__all__ = [
    "LIQUIDITY_FEATURE",
    "behaviour_probs",
    "liquidity_of",
    "log_trajectories",
    "to_transitions",
]

_M = np.uint64(0xFFFFFFFFFFFFFFFF)
#: The feature column the participation action space reads a name's dollar ADV from.
LIQUIDITY_FEATURE = "dollar_vol_20"


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer: well-mixed 64-bit values from keys, vectorized."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M
        return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, sessions: pl.Series, symbols: pl.Series, stream: int) -> np.ndarray:
    """Two independent-looking U(0, 1) per (seed, session, symbol, stream)."""
    day = sessions.cast(pl.Date).cast(pl.Int64).to_numpy().astype(np.uint64)
    sym = np.array([zlib.crc32(s.encode()) for s in symbols.to_list()], dtype=np.uint64)
    with np.errstate(over="ignore"):
        key = _splitmix(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(stream))
        key = _splitmix(key ^ (day * np.uint64(0x2545F4914F6CDD1D)))
        key = _splitmix(key ^ sym)
    return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def behaviour_probs(n: int, k: int, baseline: int, epsilon: float) -> np.ndarray:
    """(n, k): 1 − ε + ε/k on the baseline bucket, ε/k on each other."""
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon}: exploration must be in (0, 1] for OPE to work")
    probs = np.full((n, k), epsilon / k)
    probs[:, baseline] += 1.0 - epsilon
    return probs


def log_trajectories(
    decisions: pl.DataFrame, cfg: RewardConfig, *, epsilon: float, seed: int
) -> pl.DataFrame:
    """The behaviour policy's decisions on `decisions` (`env.decision_frame`, sorted by
    symbol and session): per row the action, its bucket, every bucket's probability
    (`prob_0…`), the previous position and the reward."""
    k, baseline = len(cfg.buckets), cfg.baseline
    n = decisions.height
    probs = behaviour_probs(n, k, baseline, epsilon)
    u_explore = _uniforms(seed, decisions.get_column("session"), decisions.get_column("symbol"), 0)
    u_bucket = _uniforms(seed, decisions.get_column("session"), decisions.get_column("symbol"), 1)
    random_bucket = np.minimum((u_bucket * k).astype(np.int64), k - 1)
    action = np.where(u_explore < epsilon, random_bucket, baseline)
    bucket = np.asarray(cfg.buckets)[action]
    w = decisions.get_column("exposure").to_numpy()
    # the previous row (same name, previous session) left the position an episode continues
    # from; an episode starts flat, but a one-decision episode carries the logged position
    cont = decisions.get_column("step").to_numpy() > 0
    if cfg.episode == "session":
        cont = decisions.get_column("held_before").to_numpy()
    prev = np.zeros(n)
    if cfg.action == "participation":  # a position depends on the one before: row by row
        for i in np.flatnonzero(cont):
            prev[i] = position(bucket[i - 1], w[i - 1], prev[i - 1], cfg)
    else:
        prev = np.where(cont, np.r_[0.0, (bucket * w)[:-1]], 0.0)
    liquid = cfg.action == "participation"
    r = reward(
        bucket,
        w,
        decisions.get_column("y").to_numpy(),
        prev,
        cfg,
        vol=decisions.get_column("vol").to_numpy(),
        adv_share=decisions.get_column("adv_share").to_numpy() if liquid else None,
    )
    return decisions.with_columns(
        pl.Series("prev_position", prev),
        pl.Series("action", action),
        pl.Series("bucket", bucket),
        pl.Series("reward", r),
        *[pl.Series(f"prob_{j}", probs[:, j]) for j in range(k)],
    )


def to_transitions(
    log: pl.DataFrame, buckets: tuple[float, ...], state: tuple[str, ...] = STATE
) -> Transitions:
    """Logged rows (any order) → `Transitions` over the `state` columns, episodes contiguous
    in step order; an episode ends at its last logged row."""
    rows = log.sort("episode_key", "step")
    obs = rows.select(list(state)).to_numpy().astype(np.float32)
    keys = rows.get_column("episode_key").to_numpy()
    done = np.r_[keys[1:] != keys[:-1], True] if rows.height else np.zeros(0, bool)
    next_obs = np.zeros_like(obs)
    if rows.height:
        next_obs[:-1] = obs[1:]
        next_obs[done] = 0.0
    episode = np.cumsum(np.r_[True, keys[1:] != keys[:-1]]) - 1 if rows.height else done
    probs = rows.select([f"prob_{j}" for j in range(len(buckets))]).to_numpy()
    return Transitions(
        obs=obs,
        action=rows.get_column("action").to_numpy().astype(np.int64),
        reward=rows.get_column("reward").to_numpy().astype(np.float64),
        next_obs=next_obs,
        done=done.astype(bool),
        episode=np.asarray(episode, dtype=np.int64),
        step=rows.get_column("step").to_numpy().astype(np.int64),
        behaviour_probs=probs.astype(np.float64),
        buckets=tuple(buckets),
    )


def logged_book(
    weights: pl.DataFrame,
    features: pl.DataFrame,
    bars: pl.DataFrame,
    known: list,
    *,
    trend_feature: str,
    price: str,
    lag: int,
    cfg: RewardConfig,
    epsilon: float,
    seed: int,
) -> pl.DataFrame:
    """The log rows whose reward became known on one of the sessions `known`: the book's
    decisions (target weights) with their states from the history given, the behaviour
    policy's action and probabilities, and the reward; a `known` column says when."""
    from trademl.models.offline_rl.env import decision_frame
    from trademl.models.policy.book import book_states, next_returns

    schema = log_schema(len(cfg.buckets), cfg.state)
    states = book_states(
        weights, features, trend_feature=trend_feature, liquidity_feature=liquidity_of(cfg)
    )
    y = next_returns(bars, price=price, lag=lag)
    # every held name shapes the session's states (rank, crowding, regime), as at serving;
    # only decisions with a realized return are logged
    book = states.join(y, on=["session", "symbol"], how="left")
    if book.height == 0:
        return pl.DataFrame(schema=schema)
    log = log_trajectories(decision_frame(book, lag=lag, cfg=cfg), cfg, epsilon=epsilon, seed=seed)
    rows = log.filter(
        pl.col("known").is_in(pl.Series(known, dtype=pl.Date).implode()) & pl.col("y").is_finite()
    )
    return rows.select(list(schema)).cast(schema).sort("known", "symbol", "session")


def liquidity_of(cfg: RewardConfig) -> str | None:
    """The feature the book's dollar ADV comes from, where the action space needs it."""
    return LIQUIDITY_FEATURE if cfg.action == "participation" else None


def log_schema(k: int, state: tuple[str, ...] = STATE) -> dict[str, pl.DataType]:
    """The columns of a trajectory log with `k` buckets and the `state` columns (the lake
    table `rl_trajectories`)."""
    return {
        "known": pl.Date(),
        "session": pl.Date(),
        "symbol": pl.String(),
        "episode_key": pl.String(),
        "step": pl.Int64(),
        **{c: pl.Float64() for c in state},
        "exposure": pl.Float64(),
        "y": pl.Float64(),
        "action": pl.Int64(),
        "bucket": pl.Float64(),
        "reward": pl.Float64(),
        **{f"prob_{j}": pl.Float64() for j in range(k)},
    }


def serving_states(
    weights: pl.DataFrame,
    features: pl.DataFrame,
    bars: pl.DataFrame,
    session: object,
    *,
    trend_feature: str,
    price: str,
    lag: int,
    cfg: RewardConfig,
    prev_position: dict[str, float] | None = None,
) -> pl.DataFrame:
    """The `STATE` of every name the book holds at `session`, from the window of target
    weights, features and bars up to it — the states the log recorded for that session (its
    own and recent returns are not known yet and are not needed). `prev_position` (symbol →
    the position the served book holds now; a name absent holds nothing) defaults to the
    target weight of the previous session (the baseline bucket 1.0)."""
    from trademl.models.offline_rl.env import decision_frame
    from trademl.models.policy.book import book_states, next_returns

    states = book_states(
        weights, features, trend_feature=trend_feature, liquidity_feature=liquidity_of(cfg)
    )
    y = next_returns(bars, price=price, lag=lag).select("session", "symbol", "y")
    book = states.join(y, on=["session", "symbol"], how="left")
    frame = decision_frame(book, lag=lag, cfg=cfg).filter(pl.col("session") == session)
    prev_w = (
        states.filter(pl.col("session") < session)
        .filter(pl.col("session") == pl.col("session").max())
        .select("symbol", pl.col("exposure").alias("_prev"))
    )
    frame = frame.join(prev_w, on="symbol", how="left")
    if prev_position is not None:  # the whole book held: a name not in it is not held
        given = pl.col("symbol").replace_strict(prev_position, default=0.0, return_dtype=pl.Float64)
        return frame.with_columns(given.alias("prev_position")).drop("_prev")
    return frame.with_columns(pl.col("_prev").fill_null(0.0).alias("prev_position")).drop("_prev")
