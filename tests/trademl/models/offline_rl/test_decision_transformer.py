"""The Decision Transformer challenger: return-conditioned behaviour cloning over one-decision
episodes learns the synthetic market's sizing rule, its ONNX graph agrees with it exactly, it
saves and loads, and it refuses multi-decision episodes (config and data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.trademl.models.offline_rl.test_algos import (
    BUCKETS,
    behaviour_probs,
    sample_states,
    synthetic_market,
    true_reward,
)
from trademl.config import OfflineRLConfig
from trademl.models.offline_rl.algos import TrainedPolicy, load_policy, train_policy
from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.export import export_onnx
from trademl.models.offline_rl.serving import OnnxBucketPolicy

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("d3rlpy") is None, reason="needs the rl extra (d3rlpy)"
)


def one_step(data: Transitions) -> Transitions:
    """The same decisions, each its own episode (offline_rl.episode: session)."""
    n = data.n
    return Transitions(
        **{
            **data.__dict__,
            "episode": np.arange(n, dtype=np.int64),
            "step": np.zeros(n, np.int64),
            "done": np.ones(n, bool),
            "next_obs": np.zeros_like(data.obs),
        }
    )


@pytest.fixture(scope="module")
def dt() -> TrainedPolicy:
    data = one_step(synthetic_market())
    return train_policy(data, "dt", n_steps=1500, batch_size=128, seed=0, threads=1)


def test_learns_to_size_down_at_high_vol_and_beats_behaviour(dt: TrainedPolicy) -> None:
    """Scored on the true reward over fresh states, as CQL and IQL are."""
    states = sample_states(5000, np.random.default_rng(7))
    vol, score = states[:, 0].astype(np.float64), states[:, 1].astype(np.float64)
    sizes = dt.sizes(states)
    assert sizes[vol > 1.3].mean() < sizes[vol < 0.7].mean() - 0.3
    per_bucket = true_reward(vol[:, None], score[:, None], np.asarray(BUCKETS)[None, :])
    behaviour_value = float((per_bucket * behaviour_probs()).sum(axis=1).mean())
    assert float(true_reward(vol, score, sizes).mean()) > behaviour_value + 0.2


def test_onnx_and_a_reload_agree_with_the_trained_policy(dt: TrainedPolicy, tmp_path: Path):
    rng = np.random.default_rng(11)
    states = np.r_[
        sample_states(2000, rng), rng.normal(1.0, 2.0, size=(2000, 2)).astype(np.float32)
    ]
    expected = dt.predict(states)
    assert len(np.unique(expected)) > 1
    served = OnnxBucketPolicy(export_onnx(dt, tmp_path / "p.onnx"), BUCKETS)
    assert served.algo == "dt"
    np.testing.assert_array_equal(served.actions(states), expected)
    again = load_policy(dt.save(tmp_path / "saved"))
    assert again.target_return == pytest.approx(dt.target_return)
    np.testing.assert_array_equal(again.predict(states), expected)
    with pytest.raises(ValueError, match="no critic"):
        dt.q_values(states[:3])


def test_refuses_episodes_of_several_decisions() -> None:
    with pytest.raises(ValueError, match="one decision"):
        train_policy(synthetic_market(n=200), "dt", n_steps=10, batch_size=16, seed=0)
    with pytest.raises(ValueError, match="episode: session"):
        OfflineRLConfig(algo="dt", episode="week")
    assert OfflineRLConfig(algo="dt").episode == "session"
