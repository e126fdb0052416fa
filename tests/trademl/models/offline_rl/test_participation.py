"""The second action space: a participation-rate bucket (how fast to trade toward the target)
priced with square-root impact on each name's dollar ADV — hand-worked reward, the state
entry it adds, and a market built so the better speed is known: trade illiquid names whose
target flips without an edge slowly, liquid names with an edge at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from trademl.models.offline_rl.env import (
    RewardConfig,
    decision_frame,
    position,
    replay,
    reward,
    size_multiplier,
)
from trademl.models.offline_rl.pipeline import OfflineRLParams, judge, split_log
from trademl.models.offline_rl.trajectories import log_trajectories

CFG = RewardConfig(
    buckets=(0.25, 0.5, 1.0),
    cost_bps=5.0,
    drawdown_penalty=0.5,
    action="participation",
    impact_coef=1.0,
    capital=1_000_000.0,
    episode="session",
)
PARAMS = OfflineRLParams(gamma=0.9, test_frac=0.4, n_boot=300, level=0.9, min_improvement_t=2.0)
ADV = CFG.state.index("adv_share")


def test_the_reward_of_a_participation_rate_by_hand():
    # target 0.10, held 0.02, rate 0.5 → position 0.06, trade 0.04 of capital ($40k) in a
    # name trading $10M a day: participation 0.004, impact 1 · 2% · √0.004 of the notional
    w, prev, y, vol = 0.10, 0.02, 0.01, 0.02
    adv_share = CFG.capital * w / 10_000_000.0
    p = position(np.array(0.5), np.array(w), np.array(prev), CFG)
    assert p == pytest.approx(0.06)
    expected = 1e4 * (0.06 * y - 5e-4 * 0.04 - 0.02 * math.sqrt(0.004) * 0.04)
    got = reward(
        np.array([0.5]),
        np.array([w]),
        np.array([y]),
        np.array([prev]),
        CFG,
        vol=np.array([vol]),
        adv_share=np.array([adv_share]),
    )
    assert got[0] == pytest.approx(expected)  # 5.294 bps
    assert size_multiplier(np.array([0.5]), np.array([w]), np.array([prev]), CFG)[0] == (
        pytest.approx(0.6)
    )
    # a loss is penalized on top; rate 1 is the traded book (position = target)
    assert position(np.array(1.0), np.array(w), np.array(prev), CFG) == pytest.approx(w)
    size = dataclasses.replace(CFG, action="size", buckets=(0.0, 1.0))
    assert position(np.array(0.5), np.array(w), np.array(prev), size) == pytest.approx(0.05)


@pytest.mark.parametrize("buckets", [(0.0, 0.5, 1.0), (0.25, 0.5), (0.5, 1.5)])
def test_participation_rates_must_lie_in_0_1_and_include_the_traded_book(buckets):
    with pytest.raises(ValueError, match="participation rates"):
        dataclasses.replace(CFG, buckets=buckets)


def test_the_settings_refuse_rates_outside_0_1():
    from trademl.config import OfflineRLConfig

    with pytest.raises(ValueError, match="participation rates in"):
        OfflineRLConfig(action="participation", buckets=[0.0, 0.5, 1.0])
    assert OfflineRLConfig(action="participation", buckets=[0.25, 1.0]).buckets == [0.25, 1.0]


def speed_book(n_sessions: int = 300, n_names: int = 40, seed: int = 0) -> pl.DataFrame:
    """Every name's target flips sign each session (|w| = 5%). Liquid names ($1B a day) earn
    0.4% a day in the direction of the target: trading to it at once pays. Illiquid names
    ($100k a day: a full flip of $100k is the whole day's volume, 20 bps of capital in
    impact) have no edge: every trade only costs."""
    rng = np.random.default_rng(seed)
    days = [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(n_sessions)]
    liquid = np.arange(n_names) % 2 == 0
    flip = np.where(np.arange(n_sessions) % 2 == 0, 1.0, -1.0)[:, None]
    side = np.where(np.arange(n_names) % 4 < 2, 1.0, -1.0)[None, :]
    w = 0.05 * flip * side
    y = np.sign(w) * np.where(liquid, 0.004, 0.0) + 0.01 * rng.standard_normal(w.shape)
    n = n_sessions * n_names
    book = pl.DataFrame(
        {
            "session": np.repeat(np.array(days, dtype="datetime64[D]"), n_names),
            "symbol": [f"S{i:02d}" for i in range(n_names)] * n_sessions,
            "y_hat": np.sign(w).ravel() + 0.1 * rng.standard_normal(n),
            "trend": rng.standard_normal(n),
            "vol": np.full(n, 0.02),
            "exposure": w.ravel(),
            "y": y.ravel(),
            "adv": np.tile(np.where(liquid, 1e9, 1e5), n_sessions),
        }
    ).with_columns(pl.col("session").cast(pl.Date))
    return book.with_columns((pl.col("session") + pl.duration(days=2)).alias("known"))


@pytest.fixture(scope="module")
def split() -> tuple[pl.DataFrame, pl.DataFrame]:
    log = log_trajectories(decision_frame(speed_book(), lag=1, cfg=CFG), CFG, epsilon=0.5, seed=0)
    return split_log(log, test_frac=PARAMS.test_frac, lag=1)


def _deterministic(act):
    return act, lambda obs: np.eye(len(CFG.buckets))[act(obs)]


def _oracle(obs: np.ndarray) -> np.ndarray:
    return np.where(obs[:, ADV] > 0.1, 0, 2)  # illiquid: the slowest rate; liquid: at once


def test_the_state_holds_the_trade_size_in_days_of_volume_known_at_the_decision():
    book = speed_book(40, 8)
    frame = decision_frame(book, lag=1, cfg=CFG)
    shares = frame.group_by("symbol").agg(pl.col("adv_share").first()).sort("symbol")
    assert shares["adv_share"].to_list()[:2] == pytest.approx([0.05 * 1e6 / 1e9, 0.5])
    cut = book.filter(pl.col("session") <= dt.date(2023, 1, 20))
    early = decision_frame(cut, lag=1, cfg=CFG).select("session", "symbol", *CFG.state[:-1])
    later = frame.select(early.columns).filter(pl.col("session") <= dt.date(2023, 1, 20))
    assert early.sort("session", "symbol").equals(later.sort("session", "symbol"))
    with pytest.raises(ValueError, match="dollar ADV"):
        decision_frame(book.drop("adv"), lag=1, cfg=CFG)


def test_the_known_speed_passes_the_gate_and_trading_at_once_is_refused(split):
    _, test = split
    judged = judge(*_deterministic(_oracle), test, CFG, PARAMS)
    assert judged.decision.promote, judged.decision.summary()
    assert judged.metrics["ope_dr_lo"] > judged.metrics["ope_behaviour"]
    baseline = judge(*_deterministic(lambda o: np.full(len(o), 2)), test, CFG, PARAMS)
    assert not baseline.decision.promote
    slow = judge(*_deterministic(lambda o: np.zeros(len(o), int)), test, CFG, PARAMS)
    # slow everywhere saves the impact but gives up the liquid names' edge: OPE ranks it below
    assert slow.metrics["ope_dr"] < judged.metrics["ope_dr"]
    assert (
        slow.metrics["replay_policy_bps_per_session"]
        < (judged.metrics["replay_policy_bps_per_session"])
    )


def test_replay_carries_the_position_a_slow_rate_leaves():
    cfg = dataclasses.replace(CFG, episode="week")
    frame = decision_frame(speed_book(14, 2), lag=1, cfg=cfg)
    rows = replay(frame, cfg, lambda obs: np.zeros(len(obs), int)).sort("symbol", "session")
    one = rows.filter(pl.col("symbol") == "S01")
    w = frame.filter(pl.col("symbol") == "S01").sort("session")["exposure"].to_numpy()
    held = 0.0
    for r, target in zip(one.iter_rows(named=True), w, strict=True):
        if r["step"] == 0:
            held = 0.0
        assert r["prev_position"] == pytest.approx(held)
        held = held + 0.25 * (target - held)


def test_cql_learns_to_trade_illiquid_names_slowly(split):
    from trademl.models.offline_rl.export import export_onnx
    from trademl.models.offline_rl.pipeline import fit_policy
    from trademl.models.offline_rl.serving import OnnxBucketPolicy
    from trademl.models.offline_rl.trajectories import to_transitions

    train, test = split
    policy = fit_policy(train, CFG, dataclasses.replace(PARAMS, n_steps=1500))
    served = OnnxBucketPolicy(export_onnx(policy), CFG.buckets)
    obs = to_transitions(test, CFG.buckets, CFG.state).obs
    rate = served.sizes(obs)
    illiquid = obs[:, ADV] > 0.1
    assert rate[illiquid].mean() < 0.5 < rate[~illiquid].mean()
    judged = judge(served.actions, served.probs, test, CFG, PARAMS)
    assert judged.decision.promote, judged.decision.summary()


def test_a_served_rate_becomes_the_size_multiplier_of_the_target():
    from trademl_assets.offline_rl import served_sizes

    class Half:
        def sizes(self, obs: np.ndarray) -> np.ndarray:
            return np.full(len(obs), 0.5)

    states = pl.DataFrame(
        {c: [0.0, 0.0] for c in CFG.state}
        | {"exposure": [0.1, -0.04], "prev_position": [0.02, 0.04]}
    )
    # 0.02 + ½(0.1 − 0.02) = 0.06 → 0.6 ×; 0.04 + ½(−0.04 − 0.04) = 0 → 0 ×
    assert served_sizes(Half(), states, CFG) == pytest.approx([0.6, 0.0])
