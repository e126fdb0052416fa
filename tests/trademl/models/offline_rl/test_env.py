"""The sizing MDP and its logged trajectories: hand-worked rewards, point-in-time states,
documented exploration, and logs that never change when later sessions are appended."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trademl.models.offline_rl.env import STATE, MarketEnv, RewardConfig, decision_frame, reward
from trademl.models.offline_rl.trajectories import (
    behaviour_probs,
    log_trajectories,
    to_transitions,
)

CFG = RewardConfig(buckets=(0.0, 0.5, 1.0, 1.5), cost_bps=5.0, drawdown_penalty=0.5)


def book(n_sessions: int, n_names: int = 6, seed: int = 0) -> pl.DataFrame:
    """A book: every name held every session except a gap, with random states and returns."""
    rng = np.random.default_rng(seed)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(400)][:n_sessions]
    rows = []
    for t, d in enumerate(days):
        for i in range(n_names):
            if i == 0 and 10 <= t < 13:  # name 0 leaves the book for three sessions
                continue
            rows.append(
                (
                    d,
                    f"N{i}",
                    *rng.normal(size=2),
                    abs(rng.normal(0.02, 0.005)),
                    (-1) ** i * 0.1,
                    rng.normal(0, 0.02),
                )
            )
    cols = ["session", "symbol", "y_hat", "trend", "vol", "exposure", "y"]
    return pl.DataFrame(rows, schema=cols, orient="row")


def test_the_reward_is_the_documented_formula_by_hand():
    # p = 1.5 × 0.1 = 0.15; pnl = 0.15 × −0.02 = −0.003; cost = 5e-4 × |0.15 − 0.05| = 5e-5;
    # penalty = 0.5 × 0.003 = 0.0015; r = 1e4 × (−0.003 − 0.00005 − 0.0015) = −45.5 bps
    r = reward(np.array(1.5), np.array(0.1), np.array(-0.02), np.array(0.05), CFG)
    assert r == pytest.approx(-45.5)
    # a gain pays no penalty: p = 0.05, pnl = 0.0005, cost = 5e-4 × 0.05 = 2.5e-5 → 4.75 bps
    assert reward(np.array(0.5), np.array(0.1), np.array(0.01), np.array(0.0), CFG) == (
        pytest.approx(4.75)
    )


def test_states_never_see_after_the_decision():
    """Appending later sessions leaves every state of the earlier ones unchanged."""
    full = book(120)
    short = full.filter(pl.col("session") <= dt.date(2024, 3, 10))
    a = decision_frame(short, lag=1, cfg=CFG)
    b = decision_frame(full, lag=1, cfg=CFG).filter(pl.col("session") <= dt.date(2024, 3, 10))
    cols = ["session", "symbol", "episode_key", "step", *[c for c in STATE if c != "prev_position"]]
    assert_frame_equal(a.select(cols), b.select(cols))
    # and the drawdown at t uses book returns known by t: the last two sessions' own returns
    # (known lag + 1 = 2 sessions later) cannot move it
    shocked = short.with_columns(
        pl.when(pl.col("session") >= dt.date(2024, 3, 9))
        .then(-0.5)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    assert_frame_equal(decision_frame(shocked, lag=1, cfg=CFG).select(cols), a.select(cols))


def test_a_name_that_leaves_the_book_ends_its_episode():
    """Episodes are a name's run within a calendar week, keyed by the run's first session:
    N0 leaves the book on Jan 11–13, splitting the week of Jan 8 in two."""
    d = decision_frame(book(30), lag=1, cfg=CFG)
    n0 = d.filter(pl.col("symbol") == "N0").group_by("episode_key").agg(pl.len())
    got = dict(n0.iter_rows())
    assert got == {
        "N0#2024-01-01": 7,
        "N0#2024-01-08": 3,
        "N0#2024-01-14": 1,
        "N0#2024-01-15": 7,
        "N0#2024-01-22": 7,
        "N0#2024-01-29": 2,
    }
    month = decision_frame(book(30), lag=1, cfg=RewardConfig(episode="month"))
    assert month.filter(pl.col("symbol") == "N0")["episode_key"].unique().sort().to_list() == [
        "N0#2024-01-01",
        "N0#2024-01-14",
    ]


def test_the_env_steps_through_an_episode_with_the_documented_reward():
    d = decision_frame(book(30), lag=1, cfg=CFG)
    env = MarketEnv(d, CFG)
    obs, _info = env.reset(options={"episode": 0})
    assert obs.shape == (len(STATE),) and obs[-1] == 0.0 and env.action_space.n == 4
    rows = d.sort("symbol", "session").filter(
        pl.col("episode_key") == d.sort("symbol", "session")["episode_key"][0]
    )
    _total, prev, done, t = 0.0, 0.0, False, 0
    while not done:
        obs, r, done, _, _ = env.step(3)  # 1.5 × the weight every session
        w, y = rows["exposure"][t], rows["y"][t]
        assert r == pytest.approx(
            1e4 * (1.5 * w * y - 5e-4 * abs(1.5 * w - prev) - 0.5 * max(-1.5 * w * y, 0))
        )
        prev, t = 1.5 * w, t + 1
        if not done:
            assert obs[-1] == pytest.approx(prev)  # the state carries the position left
    assert t == rows.height


def test_behaviour_probabilities_and_the_exploration_rate():
    p = behaviour_probs(3, 4, 2, 0.2)
    assert np.allclose(p.sum(axis=1), 1) and p[0].tolist() == pytest.approx(
        [0.05, 0.05, 0.85, 0.05]
    )
    with pytest.raises(ValueError, match="exploration"):
        behaviour_probs(3, 4, 2, 0.0)
    log = log_trajectories(decision_frame(book(300, 20), lag=1, cfg=CFG), CFG, epsilon=0.2, seed=1)
    share = log.get_column("action").value_counts().sort("action").get_column("count").to_numpy()
    want = np.array([0.05, 0.05, 0.85, 0.05]) * log.height
    assert np.all(np.abs(share - want) < 4 * np.sqrt(want))  # within 4 s.d. of the design
    # the logged reward is the env's for the logged bucket and previous position
    r = reward(
        log["bucket"].to_numpy(),
        log["exposure"].to_numpy(),
        log["y"].to_numpy(),
        log["prev_position"].to_numpy(),
        CFG,
    )
    assert np.allclose(r, log["reward"].to_numpy())


def test_logs_are_deterministic_and_never_rewritten_by_later_sessions():
    full = decision_frame(book(200), lag=1, cfg=CFG)
    cut = dt.date(2024, 5, 1)
    short = decision_frame(book(200).filter(pl.col("session") <= cut), lag=1, cfg=CFG)
    a = log_trajectories(short, CFG, epsilon=0.3, seed=7)
    b = log_trajectories(full, CFG, epsilon=0.3, seed=7).filter(pl.col("session") <= cut)
    cols = ["session", "symbol", "action", "reward", "prev_position"]
    assert_frame_equal(a.select(cols), b.select(cols))
    assert not log_trajectories(full, CFG, epsilon=0.3, seed=8)["action"].equals(
        log_trajectories(full, CFG, epsilon=0.3, seed=7)["action"]
    )


def test_transitions_chain_states_within_episodes():
    log = log_trajectories(decision_frame(book(40), lag=1, cfg=CFG), CFG, epsilon=0.5, seed=3)
    tr = to_transitions(log.sample(fraction=1.0, shuffle=True, seed=0), CFG.buckets)
    assert tr.n == log.height and tr.done.sum() == log.get_column("episode_key").n_unique()
    inner = ~tr.done
    assert np.array_equal(tr.next_obs[inner], tr.obs[np.flatnonzero(inner) + 1])
    assert (tr.next_obs[tr.done] == 0).all()
    # the next state's previous position is this decision's position
    pos = (
        np.asarray(CFG.buckets)[tr.action] * log.sort("episode_key", "step")["exposure"].to_numpy()
    )
    assert np.allclose(tr.next_obs[inner, -1], pos[inner].astype(np.float32))
    assert np.allclose(tr.logged_prob(), np.where(tr.action == 2, 0.625, 0.125))


def test_replay_is_the_env_stepped_episode_by_episode():
    """The vectorized replay of a state-dependent policy equals stepping `MarketEnv`."""
    from trademl.models.offline_rl.env import replay

    d = decision_frame(book(60, 8), lag=1, cfg=CFG)

    def act(obs: np.ndarray) -> np.ndarray:  # depends on vol and on its own last position
        return np.where(obs[:, 2] > 0.02, 0, np.where(obs[:, -1] > 0, 3, 1))

    out = replay(d, CFG, act)
    env = MarketEnv(d, CFG)
    stepped = []
    for e in range(env.n_episodes):
        obs, _ = env.reset(options={"episode": e})
        done = False
        while not done:
            a = int(act(obs[None, :])[0])
            obs, r, done, _, _ = env.step(a)
            stepped.append((a, r))
    assert len(stepped) == out.height
    assert out["action"].to_list() == [a for a, _ in stepped]
    assert np.allclose(out["reward"].to_numpy(), [r for _, r in stepped])


def test_a_window_of_history_gives_the_states_all_of_it_gives():
    """Cutting history older than the state's windows (60 sessions + a month) changes no
    state nor episode of the later sessions: a session's log can be written from a window."""
    full = book(250, 8)
    days = full.get_column("session").unique().sort()
    cut = full.filter(pl.col("session") >= days[40])
    keep = pl.col("session") >= days[40 + 60 + 31]
    cols = ["session", "symbol", "episode_key", "step", *[c for c in STATE if c != "prev_position"]]
    a = decision_frame(full, lag=1, cfg=CFG).filter(keep).select(cols).sort("symbol", "session")
    b = decision_frame(cut, lag=1, cfg=CFG).filter(keep).select(cols).sort("symbol", "session")
    assert a.height > 500
    assert_frame_equal(a, b, rel_tol=1e-12, abs_tol=1e-12)
    la = log_trajectories(decision_frame(full, lag=1, cfg=CFG), CFG, epsilon=0.3, seed=2)
    lb = log_trajectories(decision_frame(cut, lag=1, cfg=CFG), CFG, epsilon=0.3, seed=2)
    pick = ["session", "symbol", "action", "prev_position", "reward"]
    assert_frame_equal(
        la.filter(keep).select(pick).sort("symbol", "session"),
        lb.filter(keep).select(pick).sort("symbol", "session"),
    )


def test_serving_states_are_the_states_the_log_recorded():
    """The state of the latest session, computed before any of its returns are known, is the
    state the log records for it once its reward is known (same rank, crowding, regime,
    drawdown) — what the policy sees when serving is what it was trained on."""
    from trademl.models.offline_rl.trajectories import logged_book, serving_states

    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(90)]
    rng = np.random.default_rng(4)
    w = pl.DataFrame(
        [(d, f"N{i}", 0.1 * (-1) ** i, rng.normal(), 0.02) for d in days for i in range(6)],
        schema=["date", "symbol", "weight", "score", "sigma"],
        orient="row",
    )
    feats = w.select("date", "symbol", pl.lit(0.3).alias("mom_20"))
    px = np.exp(np.cumsum(rng.normal(0, 0.01, (len(days), 6)), axis=0)) * 50
    bars = pl.DataFrame(
        [(d, f"N{i}", px[t, i], px[t, i]) for t, d in enumerate(days) for i in range(6)],
        schema=["date", "symbol", "open", "close"],
        orient="row",
    )
    at, known = days[70], days[72]  # decided at 70, its return known 2 sessions later (lag 1)
    kw = dict(trend_feature="mom_20", price="open", lag=1, cfg=CFG)
    now = serving_states(
        w.filter(pl.col("date") <= at), feats, bars.filter(pl.col("date") <= at), at, **kw
    )
    log = logged_book(w, feats, bars, [known], epsilon=0.2, seed=0, **kw)
    assert now.height == 6 and log.height == 6
    base = [c for c in STATE if c != "prev_position"]
    assert_frame_equal(now.sort("symbol").select(base), log.sort("symbol").select(base))
