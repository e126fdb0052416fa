"""The sizing MDP: states known at the decision session's close, a bucket of the target
weight as the action, and the next-session net return of the sized position as the reward.

A row of the book (`trademl.models.policy.book.book_frame`: session, symbol, y_hat, vol,
trend, exposure = target weight, y = the return a decision at the session earns) becomes a
decision. Its state (`STATE`) adds to the name's own [y_hat, vol, trend] its rank in the
session's book, its share of the book's concentration (crowding), the market's vol regime
(the book's mean σ over its trailing 60-session mean), the book's drawdown from its peak of
the last 60 sessions and recent cost (from book returns *known* by the session: realized
`lag + 1` sessions after their decision), and the position the previous decision left
(bucket × weight). Reward, in basis
points of capital, for bucket b on a name with target weight w and realized return y:

    p = b·w;  r = 10⁴ · (p·y − c·|p − p_prev| − I(|p − p_prev|) − λ·max(0, −p·y))

with c the cost model's one-way rate (fees + half spread, bps → fraction), λ the drawdown
penalty and I the square-root market impact of the trade (`RewardConfig.impact_coef` Y,
0 by default for sizing): I(Δ) = Y·σ·√(Δ/|w| · a)·Δ, σ the name's daily vol and a =
capital·|w| / ADV (dollar ADV over 20 sessions, state entry ``adv_share``): the trade's
participation in a day's volume.

The second action space (``action: participation``) decides how fast to trade, not how
much: action k is a participation-rate bucket r_k ∈ (0, 1], the share of the gap to the
target traded this session, p = p_prev + r_k·(w − p_prev), under the same reward with the
impact term on — the Almgren–Chriss trade-off between impact (trading fast, ∝ Δ^{3/2}) and
tracking (trading slowly leaves p away from the target the alpha chose). r = 1 is the traded
book. Names leave the book in full (a name without a target weight is not a decision).

Episodes are one name's consecutive sessions in the book within a calendar week (`episode:
month` for months; a name that leaves the book, or a new week, starts a new one, flat),
keyed by their first session. `episode: session` makes every decision its own episode (a
contextual bandit whose state holds the logged previous position): importance weights stay
bounded by K/ε, so off-policy evaluation of a deterministic policy rests on every decision,
at the price of not crediting what an action does to the next session's cost. Every state
entry of session t is computed from rows with session ≤ t and returns known by t, so
appending later sessions leaves it unchanged; with the last
`max(regime_window, drawdown_window)` + 23 sessions of history before t, so does cutting
earlier ones (up to float rounding): a session's log can be written once, from a window.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

__all__ = [
    "STATE",
    "MarketEnv",
    "RewardConfig",
    "decision_frame",
    "position",
    "replay",
    "reward",
    "size_multiplier",
]

STATE = (
    "y_hat",
    "rank",
    "vol",
    "trend",
    "crowding",
    "regime",
    "drawdown",
    "recent_cost",
    "prev_position",
)


@dataclass(frozen=True)
class RewardConfig:
    """The reward's terms: buckets of the target weight, one-way cost rate and the penalty
    on losses (all documented in the module docstring)."""

    buckets: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)
    cost_bps: float = 5.0
    drawdown_penalty: float = 0.5
    regime_window: int = 60
    drawdown_window: int = 60
    #: An episode is a name's run in the book within a calendar week (short: importance
    #: weights stay usable) or month.
    episode: Literal["session", "week", "month"] = "week"
    #: What an action picks: a size multiplier of the target weight, or a participation
    #: rate (the share of the gap to the target traded this session).
    action: Literal["size", "participation"] = "size"
    #: Y of the square-root impact term (0: no impact charge) and the capital the weights
    #: are fractions of (participation = traded notional / dollar ADV).
    impact_coef: float = 0.0
    capital: float = 1_000_000.0

    def __post_init__(self) -> None:
        if len(self.buckets) < 2 or min(self.buckets) < 0:
            raise ValueError(f"buckets {self.buckets}: expected ≥ 2 non-negative multipliers")
        if self.cost_bps < 0 or self.drawdown_penalty < 0 or self.impact_coef < 0:
            raise ValueError("cost_bps, drawdown_penalty and impact_coef must be ≥ 0")
        if self.capital <= 0:
            raise ValueError(f"capital={self.capital}: expected > 0")
        if self.action == "participation" and (min(self.buckets) <= 0 or max(self.buckets) != 1.0):
            raise ValueError(
                f"buckets {self.buckets}: participation rates must lie in (0, 1] and include "
                "1.0 (trade to the target: the traded book)"
            )

    @property
    def state(self) -> tuple[str, ...]:
        """The observation's columns: `STATE`, with the trade's liquidity (``adv_share``)
        before ``prev_position`` for the participation action space."""
        if self.action == "participation":
            return (*STATE[:-1], "adv_share", STATE[-1])
        return STATE

    @property
    def baseline(self) -> int:
        """The action of the traded book (bucket 1.0; the largest when 1.0 is absent)."""
        return self.buckets.index(1.0) if 1.0 in self.buckets else len(self.buckets) - 1


def position(
    bucket: np.ndarray, weight: np.ndarray, prev_position: np.ndarray, cfg: RewardConfig
) -> np.ndarray:
    """The position an action leaves: bucket × weight (size), or the previous position moved
    the bucket's share of the way to the weight (participation)."""
    if cfg.action == "participation":
        return prev_position + bucket * (weight - prev_position)
    return bucket * weight


def reward(
    bucket: np.ndarray,
    weight: np.ndarray,
    y: np.ndarray,
    prev_position: np.ndarray,
    cfg: RewardConfig,
    *,
    vol: np.ndarray | None = None,
    adv_share: np.ndarray | None = None,
) -> np.ndarray:
    """The documented reward (bps of capital) of the position `bucket` leaves, held for one
    session; the impact term needs the name's `vol` and `adv_share` (else it is 0)."""
    p = position(bucket, weight, prev_position, cfg)
    pnl = p * y
    trade = np.abs(p - prev_position)
    cost = cfg.cost_bps / 1e4 * trade
    if cfg.impact_coef > 0 and vol is not None and adv_share is not None:
        w = np.abs(weight)
        part = np.divide(trade * adv_share, w, out=np.zeros_like(trade * 1.0), where=w > 0)
        cost = cost + cfg.impact_coef * np.abs(vol) * np.sqrt(part) * trade
    return 1e4 * (pnl - cost - cfg.drawdown_penalty * np.maximum(-pnl, 0.0))


def decision_frame(book: pl.DataFrame, *, lag: int, cfg: RewardConfig) -> pl.DataFrame:
    """`book` (session, symbol, y_hat, vol, trend, exposure, y) with the full `STATE` except
    `prev_position` (which depends on the policy), the episode id and step, sorted by
    (symbol, session). Book-level entries use only returns known by the session."""
    sessions = book.select("session").unique().sort("session").with_row_index("i")
    b = book.join(sessions, on="session")
    per = (
        b.group_by("session", "i")
        .agg(
            (pl.col("exposure") * pl.col("y")).sum().alias("ret"),
            pl.col("exposure").abs().sum().alias("gross"),
            (pl.col("exposure") ** 2).sum().alias("h"),
            pl.col("vol").mean().alias("mean_vol"),
        )
        .sort("i")
    )
    # a session's book return is known lag + 1 sessions later: the drawdown at t sees returns
    # of decisions up to t − lag − 1 only
    ret = per.get_column("ret").to_numpy()
    known = np.concatenate([np.zeros(lag + 1), ret[: max(0, len(ret) - lag - 1)]])[: len(ret)]
    # drawdown from the peak of the last `drawdown_window` sessions: the same whatever
    # earlier history the frame holds (log equity differences do not depend on its start)
    log_eq = pl.Series(np.cumsum(np.log1p(np.nan_to_num(known))))
    peak = log_eq.rolling_max(cfg.drawdown_window, min_samples=1).to_numpy()
    per = per.with_columns(
        pl.Series("drawdown", 1.0 - np.exp(log_eq.to_numpy() - peak)),
        (pl.col("mean_vol") / pl.col("mean_vol").rolling_mean(cfg.regime_window, min_samples=1))
        .fill_nan(1.0)
        .alias("regime"),
    )
    weights = b.select("session", "symbol", "exposure")
    prev = weights.join(sessions, on="session").with_columns(pl.col("i") + 1).drop("session")
    turnover = (
        b.join(prev.rename({"exposure": "w_prev"}), on=["i", "symbol"], how="full", coalesce=True)
        .group_by("i")
        .agg((pl.col("exposure").fill_null(0.0) - pl.col("w_prev").fill_null(0.0)).abs().sum())
        .rename({"exposure": "turnover"})
        .sort("i")
    )
    per = per.join(turnover, on="i", how="left").with_columns(
        (pl.col("turnover").fill_null(0.0) * cfg.cost_bps / 1e4)
        .rolling_mean(5, min_samples=1)
        .alias("recent_cost")
    )
    out = (
        b.join(per.select("i", "gross", "h", "drawdown", "regime", "recent_cost"), on="i")
        .with_columns(
            (
                (pl.col("y_hat").rank("average").over("session") - 1)
                / (pl.len().over("session") - 1).clip(lower_bound=1)
            ).alias("rank"),
            (pl.col("exposure") ** 2 / pl.col("h")).fill_nan(0.0).alias("crowding"),
        )
        .sort("symbol", "i")
    )
    if cfg.action == "participation":
        out = out.with_columns(_adv_share(out, cfg.capital))
    # an episode: a name's run of consecutive book sessions within a calendar week (or
    # month), keyed by the run's first session — the same whatever earlier history it holds
    fmt = {"session": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}[cfg.episode]
    month = pl.col("session").dt.strftime(fmt)
    held = (pl.col("i") - pl.col("i").shift(1).over("symbol")).fill_null(0) == 1
    gap = ~held | (month != month.shift(1).over("symbol")).fill_null(True)
    return (
        out.with_columns(gap.cum_sum().alias("_run"), held.alias("held_before"))
        .with_columns(
            (
                pl.col("symbol")
                + "#"
                + pl.col("session").min().over("_run").dt.strftime("%Y-%m-%d")
            ).alias("episode_key"),
            pl.int_range(pl.len()).over("_run").alias("step"),
        )
        .drop("_run", "h", "gross")
    )


def size_multiplier(
    bucket: np.ndarray, weight: np.ndarray, prev_position: np.ndarray, cfg: RewardConfig
) -> np.ndarray:
    """The multiplier of the target weight an action amounts to (position / weight; 1 where
    the weight is 0): how a sized book applies either action space."""
    p = position(np.asarray(bucket, np.float64), weight, prev_position, cfg)
    return np.divide(p, weight, out=np.ones_like(p), where=weight != 0)


def _adv_share(book: pl.DataFrame, capital: float) -> pl.Expr:
    """capital·|w| / dollar ADV per row; a name without a known ADV is priced as the
    session's least liquid name (never as free to trade)."""
    if "adv" not in book.columns:
        raise ValueError(
            "offline_rl.action participation needs each name's dollar ADV: the book has no "
            "`adv` column (book_states(..., liquidity_feature='dollar_vol_20'))"
        )
    share = pl.when(pl.col("adv") > 0).then(capital * pl.col("exposure").abs() / pl.col("adv"))
    return share.fill_null(share.max().over("session")).fill_null(0.0).alias("adv_share")


class MarketEnv:
    """A gymnasium environment over logged book decisions (one episode per name's run in
    the book): `reset` starts the next episode, `step(k)` holds bucket k of the target weight
    for one session and returns the documented reward.

    The env replays realized returns, so the transition does not depend on the action except
    through `prev_position` (market impact beyond the cost model is not simulated).
    """

    def __init__(self, frame: pl.DataFrame, cfg: RewardConfig) -> None:
        import gymnasium as gym

        self.cfg = cfg
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (len(cfg.state),), np.float32)
        self.action_space = gym.spaces.Discrete(len(cfg.buckets))
        self._frame = frame.sort("symbol", "session")
        keys = self._frame.get_column("episode_key").to_numpy()
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        self._episodes = list(itertools.pairwise(bounds))
        self._x = self._frame.select(cfg.state[:-1]).to_numpy().astype(np.float64)
        self._w = self._frame.get_column("exposure").to_numpy()
        self._y = self._frame.get_column("y").to_numpy()
        self._vol = self._frame.get_column("vol").to_numpy()
        self._adv = _liquidity(self._frame, cfg)
        self._next = 0
        self._row = self._end = 0
        self._prev = 0.0

    @property
    def n_episodes(self) -> int:
        return len(self._episodes)

    def _obs(self) -> np.ndarray:
        return np.r_[self._x[self._row], self._prev].astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        episode = (options or {}).get("episode", self._next % len(self._episodes))
        self._next = episode + 1
        self._row, self._end = self._episodes[episode]
        self._prev = 0.0
        return self._obs(), {"episode": episode}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        i = self._row
        args = (np.array(self.cfg.buckets[int(action)]), self._w[i : i + 1], self._y[i : i + 1])
        prev = np.array([self._prev])
        adv = None if self._adv is None else self._adv[i : i + 1]
        r = float(reward(*args, prev, self.cfg, vol=self._vol[i : i + 1], adv_share=adv)[0])
        self._prev = float(position(args[0], args[1], prev, self.cfg)[0])
        self._row += 1
        done = self._row >= self._end
        obs = np.zeros(len(self.cfg.state), np.float32) if done else self._obs()
        return obs, r, done, False, {"position": self._prev}


def _liquidity(frame: pl.DataFrame, cfg: RewardConfig) -> np.ndarray | None:
    """The rows' ``adv_share`` where the action space prices impact, else None."""
    if cfg.action == "participation":
        return frame.get_column("adv_share").to_numpy()
    return None


def replay(
    frame: pl.DataFrame, cfg: RewardConfig, act: Callable[[np.ndarray], np.ndarray]
) -> pl.DataFrame:
    """Run a policy through every episode of `frame` (`decision_frame` rows) at once, step by
    step (its state carries the position its own previous action left): per row the bucket
    it chose and the documented reward — `MarketEnv` vectorized over episodes."""
    rows = frame.sort("episode_key", "step")
    base = rows.select(cfg.state[:-1]).to_numpy().astype(np.float64)
    w = rows.get_column("exposure").to_numpy()
    y = rows.get_column("y").to_numpy()
    step = rows.get_column("step").to_numpy()
    buckets = np.asarray(cfg.buckets)
    chosen = np.zeros(rows.height, dtype=np.int64)
    # an episode starts flat, except a one-decision episode, whose state is the logged one
    logged = cfg.episode == "session" and "prev_position" in rows.columns
    prev = rows.get_column("prev_position").to_numpy().copy() if logged else np.zeros(rows.height)
    for k in range(int(step.max()) + 1 if rows.height else 0):
        at = np.flatnonzero(step == k)
        if k > 0:  # the previous row of the same episode is the one just before
            prev[at] = position(buckets[chosen[at - 1]], w[at - 1], prev[at - 1], cfg)
        obs = np.column_stack([base[at], prev[at]]).astype(np.float32)
        chosen[at] = np.asarray(act(obs), dtype=np.int64)
    vol = rows.get_column("vol").to_numpy()
    r = reward(buckets[chosen], w, y, prev, cfg, vol=vol, adv_share=_liquidity(rows, cfg))
    return rows.select("session", "symbol", "episode_key", "step").with_columns(
        pl.Series("action", chosen), pl.Series("prev_position", prev), pl.Series("reward", r)
    )
