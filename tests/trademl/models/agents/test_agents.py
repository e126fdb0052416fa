"""The PPO and SAC allocation agents on the weekly portfolio environment: the env's accounting
by hand, a market whose best allocation is known (next week's return rises with the forecast
the state shows) where each agent beats the equal-weight book out of sample and passes its
gate, and noise, where it is refused."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from trademl.models.agents.env import WeeklyPanel, WeeklyPortfolioEnv, portfolio_step, weights_of
from trademl.models.agents.train import (
    AgentParams,
    agent_decision,
    book_metrics,
    equal_weight_returns,
    policy_returns,
    train_agent,
)

needs_sb3 = pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None, reason="needs the rl extra"
)


def panel(informative: bool, weeks: int = 300, names: int = 5, seed: int = 0) -> WeeklyPanel:
    """Next week's return = 0.2% + 1% × the forecast (when informative) + 2% noise."""
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((weeks, names))
    nxt = 0.002 + (0.01 * f if informative else 0.0) + 0.02 * rng.standard_normal((weeks, names))
    return WeeklyPanel(
        forecast=f,
        ret4=0.02 * rng.standard_normal((weeks, names)),
        vol=np.abs(0.02 + 0.005 * rng.standard_normal((weeks, names))),
        next_return=nxt,
        weeks=np.arange(weeks),
        symbols=tuple(f"S{i}" for i in range(names)),
    )


def test_a_step_is_the_weeks_return_net_of_the_traded_notional():
    """From all cash into (60%, 40%, 0% cash): traded 2.0 → 10 bps × 2 = 0.2% cost; the book
    earns 0.6 × 5% + 0.4 × (−10%) = −1%, and drifts to (0.63, 0.36) / 0.99."""
    target, before = np.array([0.6, 0.4, 0.0]), np.array([0.0, 0.0, 1.0])
    net, drifted = portfolio_step(target, before, np.array([0.05, -0.10]), cost_bps=10.0)
    assert net == pytest.approx(-0.01 - 0.002)
    np.testing.assert_allclose(drifted, np.array([0.63, 0.36, 0.0]) / 0.99)
    w = weights_of(np.array([1.0, -1.0, 0.0]), temperature=5.0)
    assert w.sum() == pytest.approx(1.0) and (w > 0).all() and w[0] > w[2] > w[1]
    env = WeeklyPortfolioEnv(panel(True, weeks=10), cost_bps=5.0, episode_weeks=4, seed=1)
    obs, _ = env.reset()
    assert obs.shape == (4 * 5 + 1,) and obs[-1] == 1.0  # starts in cash
    steps = 0
    done = False
    while not done:
        obs, _, _, done, _ = env.step(np.zeros(6, np.float32))
        steps += 1
    assert steps == 4


@needs_sb3
@pytest.mark.parametrize(
    ("algo", "params"),
    [
        ("ppo", AgentParams(algo="ppo", steps=12_000)),
        # a week's weights barely move the next week's reward here (the cost): a short
        # horizon and a faster learning rate let SAC learn it in test-sized runs
        ("sac", AgentParams(algo="sac", steps=6_000, lr=1e-3, gamma=0.0)),
    ],
)
def test_agents_learn_the_known_allocation_and_noise_is_refused(algo, params):
    """PPO is judged by held-out Sharpe, SAC by held-out CAGR, against equal weight."""
    key = "sharpe" if algo == "ppo" else "cagr"
    verdicts = {}
    for informative in (True, False):
        p = panel(informative)
        train, test = p.slice(0, 200), p.slice(200, 300)
        agent = train_agent(train, params)
        held = book_metrics(policy_returns(agent, test, params))
        ew = book_metrics(equal_weight_returns(test, params.cost_bps))
        margin = 0.25 if algo == "ppo" else 0.05
        verdicts[informative] = (
            agent_decision(algo, held, ew, None, margin=margin, min_sharpe=0.5),
            held,
            ew,
        )
    decision, held, ew = verdicts[True]
    assert decision.promote, (held, ew)
    assert held["sharpe"] > ew["sharpe"] + 1.0
    assert not verdicts[False][0].promote, verdicts[False][1:]
    # a champion that did better on the same weeks keeps its place
    better = {key: held[key] + 0.1}
    assert not agent_decision(algo, held, ew, better, margin=0.0, min_sharpe=0.5).promote


@needs_sb3
def test_a_finetune_starts_from_the_given_agents_weights():
    """With a learning rate of ~0 a finetune's actions are the champion's: it started there."""
    p = panel(True, weeks=60)
    base = train_agent(p, AgentParams(algo="ppo", steps=512, seed=1))
    tuned = train_agent(p, AgentParams(algo="ppo", steps=512, lr=1e-12, seed=2), init=base)
    fresh = train_agent(p, AgentParams(algo="ppo", steps=512, lr=1e-12, seed=2))
    env = WeeklyPortfolioEnv(p, cost_bps=5.0, episode_weeks=None)
    obs = np.stack([env.reset(seed=0)[0], *[env.step(np.zeros(6))[0] for _ in range(20)]])
    act = lambda m: m.predict(obs, deterministic=True)[0]  # noqa: E731
    np.testing.assert_allclose(act(tuned), act(base), atol=1e-5)
    assert not np.allclose(act(fresh), act(base), atol=1e-3)
