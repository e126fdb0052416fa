"""The agents' weekly panel by hand (week ends, next-week and 20-session returns, carried
closes, names without history), the liquidity ranking, the previous-year snapshot rule for
forecasts, and the ONNX graph against the trained policy (PPO and SAC)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math

import numpy as np
import polars as pl
import pytest

from trademl.models.agents.env import WeeklyPortfolioEnv
from trademl.models.agents.panel import (
    liquid_names,
    panel_weeks,
    snapshot_forecasts,
    weekly_panel,
)
from trademl.models.forecasts.weekly import WeeklySamples

# Mon 4 … Fri 22 March 2024: three ISO weeks of five sessions
DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(19)]
DAYS = [d for d in DAYS if d.weekday() < 5]


def _bars() -> pl.DataFrame:
    rows = []
    for t, d in enumerate(DAYS):
        rows.append((d, "A", 100 * 1.01**t, 1000.0))
        if t != 7:  # a missing bar: B's close carries
            rows.append((d, "B", 50.0 if t < 10 else 55.0, 10_000.0))
        if t >= 6:  # C starts trading on the second week
            rows.append((d, "C", 10.0, 1.0))
    return pl.DataFrame(rows, schema=["date", "symbol", "close", "volume"], orient="row")


def test_the_panel_by_hand():
    assert panel_weeks(DAYS, DAYS[4]) == [(4, 9), (9, 14)]
    assert panel_weeks(DAYS, DAYS[5]) == [(9, 14)]
    names = ["A", "B", "C"]
    forecasts = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    p = weekly_panel(_bars(), DAYS, names, DAYS[4], forecasts)
    assert list(p.weeks) == [np.datetime64("2024-03-08"), np.datetime64("2024-03-15")]
    np.testing.assert_allclose(p.next_return[:, 0], [1.01**5 - 1] * 2)
    np.testing.assert_allclose(p.next_return[:, 1], [0.0, 0.1])  # 50 → 50 (carried) → 55
    np.testing.assert_allclose(p.next_return[:, 2], [0.0, 0.0])  # no close yet, then flat
    # 20-session return: from the first session there is (the window clips at 0)
    np.testing.assert_allclose(p.ret4[:, 0], [1.01**4 - 1, 1.01**9 - 1])
    np.testing.assert_allclose(p.vol[:, 0], [0.0, 0.0], atol=1e-12)  # a constant log return
    assert p.vol[1, 1] == 0.0 and p.ret4[0, 2] == 0.0
    np.testing.assert_array_equal(p.forecast, forecasts)
    with pytest.raises(ValueError, match="expected \\(2 weeks, 3 names\\)"):
        weekly_panel(_bars(), DAYS, names, DAYS[4], forecasts[:1])


def test_the_most_liquid_names_as_of_the_window_start():
    # dollar volume: B 50 × 10,000 > A ~100 × 1,000 > C 10 × 1
    assert liquid_names(_bars(), DAYS[9], 2, sessions=20) == ["A", "B"]
    assert liquid_names(_bars(), DAYS[9], 3, sessions=20) == ["A", "B", "C"]
    with pytest.raises(ValueError, match="2 names have bars with volume by 2024-03-05"):
        liquid_names(_bars(), DAYS[1], 3, sessions=20)  # C has no bar yet


def test_a_week_of_year_y_is_forecast_by_the_snapshot_of_y_minus_1():
    dates = np.array(["2024-12-27", "2024-12-27", "2025-01-03"], dtype="datetime64[D]")
    samples = WeeklySamples(
        x=np.zeros((3, 4, 1), np.float32),
        y=np.zeros(3),
        date=dates,
        known=dates,
        symbol=np.array(["A", "B", "A"], dtype=object),
    )
    weeks = [dt.date(2024, 12, 27), dt.date(2025, 1, 3)]
    predictors = {2023: lambda x: np.full(len(x), 1.0), 2024: lambda x: np.full(len(x), 2.0)}
    out = snapshot_forecasts(samples, weeks, ["A", "B"], predictors)
    np.testing.assert_array_equal(out, [[1.0, 1.0], [2.0, 0.0]])  # B has no 2025 sample
    with pytest.raises(ValueError, match="need the snapshot of 2024"):
        snapshot_forecasts(samples, weeks, ["A", "B"], {2023: predictors[2023]})


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None, reason="rl extra")
@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_the_onnx_graph_gives_the_trained_policys_weights(algo, tmp_path):
    from tests.trademl.models.agents.test_agents import panel
    from trademl.models.agents.export import (
        ONNX_FILE,
        OnnxAgent,
        load_agent,
        save_agent,
        trained_weights,
    )
    from trademl.models.agents.train import AgentParams, train_agent

    p = panel(True, weeks=40)
    params = AgentParams(algo=algo, steps=400, net_arch=(16,), temperature=3.0)
    model = train_agent(p, params)
    save_agent(model, params, list(p.symbols), tmp_path)
    loaded, meta = load_agent(tmp_path)
    assert meta == {"algo": algo, "temperature": 3.0, "symbols": list(p.symbols)}
    env = WeeklyPortfolioEnv(p, cost_bps=5.0, episode_weeks=None)
    obs = [env.reset(seed=0)[0]]
    rng = np.random.default_rng(1)
    for _ in range(12):
        obs.append(env.step(rng.uniform(-1, 1, p.n_names + 1))[0])
    x = np.stack(obs)
    served = OnnxAgent((tmp_path / ONNX_FILE).read_bytes()).weights(x)
    want = np.stack([trained_weights(model, o, 3.0) for o in x])
    np.testing.assert_allclose(served, want, atol=1e-5)
    np.testing.assert_allclose(np.stack([trained_weights(loaded, o, 3.0) for o in x]), want)
    assert all(math.isclose(w.sum(), 1.0, rel_tol=1e-5) for w in served)


def test_an_open_last_week_and_a_book_that_longer_data_never_changes():
    """The open last week has no next return; an agent's book walked over a longer panel
    keeps every earlier week's targets (a week's targets read only what its close knew)."""
    from trademl.models.agents.book import agent_book

    assert panel_weeks(DAYS, DAYS[4], open_end=True) == [(4, 9), (9, 14), (14, None)]
    assert panel_weeks(DAYS[:12], DAYS[4], open_end=True) == [(4, 9), (9, 11), (11, None)]
    names = ["A", "B"]
    f = np.array([[0.3, -0.3], [-0.2, 0.2], [0.1, 0.0]])
    long = weekly_panel(_bars(), DAYS, names, DAYS[4], f, open_end=True)
    assert long.next_return[-1].tolist() == [0.0, 0.0]

    def policy(obs: np.ndarray) -> np.ndarray:  # favours the forecast, reads the weights
        score = np.r_[obs[0, :2] + 0.5 * obs[0, -3:-1], 0.0]
        e = np.exp(score)
        return (e / e.sum())[None, :]

    book = agent_book(policy, long, cost_bps=5.0)
    assert book.shape == (3, 3) and np.allclose(book.sum(axis=1), 1.0)
    short = weekly_panel(_bars(), DAYS[:10], names, DAYS[4], f[:2], open_end=True)
    np.testing.assert_allclose(agent_book(policy, short, cost_bps=5.0), book[:2])
    assert not np.allclose(book[1], agent_book(policy, long.slice(1, 3), cost_bps=5.0)[0])
