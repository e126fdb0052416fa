"""The weekly portfolio environment the allocation agents learn in (gymnasium API).

Data are per week t and name i (`WeeklyPanel`): a forecast of next week's log return — for
the platform's agents, the forecaster's snapshot of the previous year end, never a model that
saw the week — the last 4 weeks' return and the recent daily vol, all known at week t's last
close; and the simple return of holding the name over week t+1, which the step realizes.

State = the forecasts, the 4-week returns and the vols (each standardized across the names
of the week), and the current weights (names, then cash). Action = N + 1 scores in [−1, 1];
the target weights are softmax(`temperature` · scores) over the names and cash: long-only,
fully invested, cash allowed. Reward = the week's net portfolio return:
Σ w_i r_i − cost_bps · 1e−4 · Σ |w − w_before|, with w_before the weights the previous week
drifted to (the platform's linear cost — fee plus half spread — per unit of traded notional).
An episode walks `episode_weeks` consecutive weeks from a start drawn by the env's RNG (the
whole panel when `episode_weeks` is None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["WeeklyPanel", "WeeklyPortfolioEnv", "observation", "portfolio_step", "weights_of"]


@dataclass(frozen=True)
class WeeklyPanel:
    """(T, N) arrays, week-major; `weeks` (T,) their last sessions; `symbols` (N,)."""

    forecast: np.ndarray
    ret4: np.ndarray
    vol: np.ndarray
    next_return: np.ndarray
    weeks: np.ndarray
    symbols: tuple[str, ...]

    @property
    def n_weeks(self) -> int:
        return int(self.forecast.shape[0])

    @property
    def n_names(self) -> int:
        return int(self.forecast.shape[1])

    def slice(self, start: int, stop: int) -> WeeklyPanel:
        return WeeklyPanel(
            self.forecast[start:stop],
            self.ret4[start:stop],
            self.vol[start:stop],
            self.next_return[start:stop],
            self.weeks[start:stop],
            self.symbols,
        )


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def observation(panel: WeeklyPanel, t: int, weights: np.ndarray) -> np.ndarray:
    """The state at week `t` holding `weights` (names, then cash): forecasts, 4-week returns
    and vols, each standardized across the week's names, then the weights."""
    return np.concatenate(
        [_z(panel.forecast[t]), _z(panel.ret4[t]), _z(panel.vol[t]), weights]
    ).astype(np.float32)


def weights_of(action: np.ndarray, temperature: float) -> np.ndarray:
    """Target weights (names, then cash) of an action: softmax(temperature · scores)."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * temperature
    e = np.exp(a - a.max())
    return e / e.sum()


def portfolio_step(
    target: np.ndarray, before: np.ndarray, returns: np.ndarray, cost_bps: float
) -> tuple[float, np.ndarray]:
    """(net return, the weights it drifts to) of rebalancing `before` → `target` and holding
    a week with simple `returns` (names; cash earns 0)."""
    cost = cost_bps * 1e-4 * float(np.abs(target - before).sum())
    gross = float(target[:-1] @ returns)
    grown = target * np.r_[1.0 + returns, 1.0]
    return gross - cost, grown / grown.sum()


class WeeklyPortfolioEnv:
    """A gymnasium environment over a `WeeklyPanel` (module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        panel: WeeklyPanel,
        *,
        cost_bps: float,
        temperature: float = 5.0,
        episode_weeks: int | None = 26,
        seed: int = 0,
    ) -> None:
        import gymnasium as gym

        if panel.n_weeks < 2:
            raise ValueError("portfolio env: at least 2 weeks are needed")
        self.panel = panel
        self.cost_bps = float(cost_bps)
        self.temperature = float(temperature)
        self.episode_weeks = episode_weeks
        n = panel.n_names
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4 * n + 1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n + 1,), np.float32)
        self._rng = np.random.default_rng(seed)
        self._t = 0
        self._end = panel.n_weeks
        self._w = np.r_[np.zeros(n), 1.0]

    # gymnasium.Env's protocol without subclassing it at import time (gymnasium is optional)
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        t_max = self.panel.n_weeks
        length = self.episode_weeks or t_max
        if length >= t_max:
            self._t, self._end = 0, t_max
        else:
            self._t = int(self._rng.integers(0, t_max - length + 1))
            self._end = self._t + length
        self._w = np.r_[np.zeros(self.panel.n_names), 1.0]
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        return observation(self.panel, self._t, self._w)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        target = weights_of(action, self.temperature)
        reward, self._w = portfolio_step(
            target, self._w, self.panel.next_return[self._t], self.cost_bps
        )
        self._t += 1
        done = self._t >= self._end
        obs = self._obs() if not done else np.zeros(self.observation_space.shape, np.float32)
        return obs, reward, False, done, {"weights": target}

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


def as_gym(env: WeeklyPortfolioEnv) -> Any:
    """`env` wrapped as a `gymnasium.Env` subclass (what stable-baselines3 checks for)."""
    import gymnasium as gym

    class _Env(gym.Env):
        metadata = env.metadata

        def __init__(self) -> None:
            self.inner = env
            self.observation_space = env.observation_space
            self.action_space = env.action_space

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            return self.inner.reset(seed=seed, options=options)

        def step(self, action):
            return self.inner.step(action)

    return _Env()
