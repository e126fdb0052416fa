"""PPO and SAC allocation agents (stable-baselines3 on gymnasium) on `WeeklyPortfolioEnv`:
training (`full` from scratch; `finetune` from a given agent's weights), the held-out
evaluation against the equal-weight book, and the gate.

The gate fails closed and has absolute bars, a first agent included (nothing is promoted for
being first): PPO is judged by held-out Sharpe, SAC by held-out CAGR — each must beat the
equal-weight book of the same names on the same weeks by `margin`, reach `min_sharpe`, and,
with a champion, beat the champion's figure on those weeks.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from trademl.models.agents.env import WeeklyPanel, WeeklyPortfolioEnv, as_gym, portfolio_step
from trademl.models.gate import Decision, check

__all__ = [
    "AgentParams",
    "agent_decision",
    "book_metrics",
    "equal_weight_returns",
    "policy_returns",
    "train_agent",
    "training_metrics",
]

Algo = Literal["ppo", "sac"]
WEEKS_PER_YEAR = 52.0


@dataclass(frozen=True)
class AgentParams:
    """Training settings: `steps` environment steps at learning rate `lr` (full: 100k at
    3e-4; finetune: 10k at 1e-4 from the champion)."""

    algo: Algo = "ppo"
    steps: int = 100_000
    lr: float = 3e-4
    gamma: float = 0.9
    net_arch: tuple[int, ...] = (64, 64)
    seed: int = 0
    episode_weeks: int = 26
    temperature: float = 5.0
    cost_bps: float = 5.0
    device: str = "cpu"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """stable-baselines3 imports the legacy `gym` when present (a warning on stderr)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _algo_class(algo: str) -> Any:
    with _quiet():
        import stable_baselines3 as sb3
    if algo not in ("ppo", "sac"):
        raise ValueError(f"agents: algo must be ppo or sac, got {algo!r}")
    return sb3.PPO if algo == "ppo" else sb3.SAC


def train_agent(panel: WeeklyPanel, params: AgentParams, *, init: Any | None = None) -> Any:
    """Train an agent on `panel`'s weeks; `init` (a trained agent of the same algorithm)
    warm-starts it (a finetune). Returns the stable-baselines3 model."""
    import torch

    cls = _algo_class(params.algo)
    env = as_gym(
        WeeklyPortfolioEnv(
            panel,
            cost_bps=params.cost_bps,
            temperature=params.temperature,
            episode_weeks=min(params.episode_weeks, panel.n_weeks),
            seed=params.seed,
        )
    )
    torch.manual_seed(params.seed)
    kwargs: dict[str, Any] = {
        "learning_rate": params.lr,
        "gamma": params.gamma,
        "seed": params.seed,
        "verbose": 0,
        "policy_kwargs": {"net_arch": list(params.net_arch)},
    }
    if params.algo == "ppo":
        kwargs |= {"n_steps": 512, "batch_size": 64}
    else:
        kwargs |= {"learning_starts": 200, "batch_size": 128}
    with _quiet():
        model = cls("MlpPolicy", env, device=params.device, **kwargs)
        model.set_logger(_capturing_logger())
        if init is not None:
            model.policy.load_state_dict(init.policy.state_dict())
        model.learn(total_timesteps=params.steps)
    return model


def _capturing_logger() -> Any:
    """A stable-baselines3 logger that keeps the last value of every numeric record."""
    from stable_baselines3.common.logger import KVWriter, Logger

    class Capture(KVWriter):
        def __init__(self) -> None:
            self.values: dict[str, float] = {}

        def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
            for key, value in key_values.items():
                if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
                    self.values[key] = float(value)

        def close(self) -> None:
            return None

    return Logger(folder=None, output_formats=[Capture()])


#: stable-baselines3's records → the platform's names (PPO's, then SAC's).
_LOSSES = {
    "train/policy_gradient_loss": "policy_loss",
    "train/value_loss": "value_loss",
    "train/actor_loss": "policy_loss",
    "train/critic_loss": "value_loss",
    "rollout/ep_rew_mean": "mean_episode_return",
}


def training_metrics(model: Any) -> dict[str, float]:
    """The last policy and value (critic) losses and mean episode return `train_agent`
    recorded (absent when training was too short to log them)."""
    writer = model.logger.output_formats[0]
    values = getattr(writer, "values", {})
    return {name: values[key] for key, name in _LOSSES.items() if key in values}


def policy_returns(model: Any, panel: WeeklyPanel, params: AgentParams) -> np.ndarray:
    """The agent's weekly net returns over every week of `panel` (deterministic actions)."""
    env = WeeklyPortfolioEnv(
        panel, cost_bps=params.cost_bps, temperature=params.temperature, episode_weeks=None
    )
    obs, _ = env.reset(seed=0)
    out = []
    for _ in range(panel.n_weeks):
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, _, done, _ = env.step(action)
        out.append(reward)
        if done:
            break
    return np.asarray(out)


def equal_weight_returns(panel: WeeklyPanel, cost_bps: float) -> np.ndarray:
    """The equal-weight book of the same names (no cash), rebalanced weekly, net of cost."""
    n = panel.n_names
    target = np.r_[np.full(n, 1.0 / n), 0.0]
    w = np.r_[np.zeros(n), 1.0]
    out = []
    for t in range(panel.n_weeks):
        r, w = portfolio_step(target, w, panel.next_return[t], cost_bps)
        out.append(r)
    return np.asarray(out)


def book_metrics(returns: np.ndarray) -> dict[str, float]:
    """Annualized Sharpe and CAGR, max drawdown and mean of weekly simple returns."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return {"sharpe": math.nan, "cagr": math.nan, "max_drawdown": math.nan, "mean": math.nan}
    sd = r.std(ddof=1)
    equity = np.cumprod(1.0 + r)
    years = r.size / WEEKS_PER_YEAR
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    return {
        "sharpe": float(r.mean() / sd * math.sqrt(WEEKS_PER_YEAR)) if sd > 0 else math.nan,
        "cagr": float(equity[-1] ** (1.0 / years) - 1.0) if equity[-1] > 0 else -1.0,
        "max_drawdown": float((1.0 - equity / peak).max()),
        "mean": float(r.mean()),
    }


def agent_decision(
    algo: str,
    held_out: Mapping[str, float],
    equal_weight: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    margin: float,
    min_sharpe: float,
) -> Decision:
    """PPO by held-out Sharpe, SAC by held-out CAGR (module docstring)."""
    key = "sharpe" if algo == "ppo" else "cagr"
    checks = [
        check(
            f"{key}_vs_equal_weight",
            held_out.get(key),
            equal_weight.get(key, math.nan) + margin,
            "≥",
        ),
        check("sharpe", held_out.get("sharpe"), min_sharpe, "≥"),
    ]
    if champion is not None:
        checks.append(check(f"{key}_vs_champion", held_out.get(key), champion.get(key), ">"))
    return Decision(checks)
