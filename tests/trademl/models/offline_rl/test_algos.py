"""Offline RL sizing algorithms: discrete CQL / IQL (d3rlpy) recover a known sizing rule, the
ONNX export agrees exactly with d3rlpy, training is seeded and quiet, and serving runs on
onnxruntime alone.

The synthetic market: state = [vol, score]; the size-k reward is
``b_k · (1 + score) − (b_k · vol)² + noise`` — expected return grows with the size, the risk
penalty with (size × vol)², so the best bucket falls as vol rises (b* = (1 + score) / (2 vol²)).
The behaviour book holds 1.0× and explores ε-randomly over (0, 0.5, 1, 1.5)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from trademl.models.offline_rl.algos import (
    TrainedPolicy,
    build_mdp_dataset,
    load_policy,
    nearest_bucket,
    train_policy,
)
from trademl.models.offline_rl.data import Transitions
from trademl.models.offline_rl.export import export_onnx
from trademl.models.offline_rl.serving import OnnxBucketPolicy

# d3rlpy comes with the `rl` extra (make install has it); checked without importing it, so
# its import happens the quiet way, inside algos
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("d3rlpy") is None, reason="needs the rl extra (d3rlpy)"
)

BUCKETS = (0.0, 0.5, 1.0, 1.5)
EPS = 0.5
BASELINE = 2  # the behaviour book's bucket (1.0×)
NOISE = 0.5
EP_LEN = 20
ROOT = Path(__file__).resolve().parents[4]


def behaviour_probs() -> np.ndarray:
    """ε-random around the baseline bucket: ε/K each, plus 1 − ε on the baseline."""
    p = np.full(len(BUCKETS), EPS / len(BUCKETS))
    p[BASELINE] += 1.0 - EPS
    return p


def true_reward(vol: np.ndarray, score: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Expected reward of holding `size` × the target at state (vol, score)."""
    return size * (1.0 + score) - (size * vol) ** 2


def sample_states(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.c_[rng.uniform(0.5, 1.5, n), rng.uniform(0.0, 1.0, n)].astype(np.float32)


def synthetic_market(n: int = 6000, seed: int = 0) -> Transitions:
    """Logged ε-random behaviour on the synthetic market, in episodes of `EP_LEN` steps."""
    rng = np.random.default_rng(seed)
    obs = sample_states(n, rng)
    p = behaviour_probs()
    action = rng.choice(len(BUCKETS), size=n, p=p)
    size = np.asarray(BUCKETS)[action]
    reward = true_reward(obs[:, 0], obs[:, 1], size) + rng.normal(0.0, NOISE, n)
    step = np.arange(n) % EP_LEN
    done = (step == EP_LEN - 1) | (np.arange(n) == n - 1)
    next_obs = np.zeros_like(obs)
    next_obs[:-1] = obs[1:]
    next_obs[done] = 0.0
    return Transitions(
        obs=obs,
        action=action.astype(np.int64),
        reward=reward,
        next_obs=next_obs,
        done=done,
        episode=(np.arange(n) // EP_LEN).astype(np.int64),
        step=step.astype(np.int64),
        behaviour_probs=np.tile(p, (n, 1)),
        buckets=BUCKETS,
    )


@pytest.fixture(scope="module")
def market() -> Transitions:
    return synthetic_market()


@pytest.fixture(scope="module")
def policies(market: Transitions) -> dict[str, TrainedPolicy]:
    """One CQL and one IQL policy on the synthetic market (small nets, one torch thread)."""
    return {
        "cql": train_policy(market, "cql", n_steps=400, batch_size=128, seed=0, threads=1),
        "iql": train_policy(market, "iql", n_steps=600, batch_size=128, seed=0, threads=1),
    }


def test_mdp_dataset_keeps_every_decision_and_places_episode_ends() -> None:
    """`done` rows are terminal; a run cut without `done` (the data ends mid-episode) is a
    timeout whose logged next state is appended, so every decision is a transition."""
    full = synthetic_market(n=45, seed=1)  # episodes of 20, 20 and 5 (the last cut short)
    done = full.done.copy()
    done[-1] = False
    next_obs = full.next_obs.copy()
    next_obs[-1] = np.float32([0.9, 0.4])
    data = Transitions(**{**full.__dict__, "done": done, "next_obs": next_obs})
    ds = build_mdp_dataset(data, "cql")
    assert ds.transition_count == data.n
    assert [(e.size(), bool(e.terminated)) for e in ds.episodes] == [
        (20, True),
        (20, True),
        (6, False),
    ]
    np.testing.assert_array_equal(ds.episodes[2].observations[-1], next_obs[-1])
    cont = build_mdp_dataset(data, "iql")
    np.testing.assert_array_equal(
        cont.episodes[0].actions[:, 0], np.asarray(BUCKETS, np.float32)[data.action[:20]]
    )


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_recovers_smaller_size_at_high_vol_and_beats_behaviour(
    policies: dict[str, TrainedPolicy], algo: str
) -> None:
    """Scored on the TRUE reward function over fresh states: the learned policy sizes down
    as vol rises and earns more than both the ε-random behaviour book and the unsized
    (always 1.0×) book."""
    pol = policies[algo]
    states = sample_states(5000, np.random.default_rng(7))
    vol, score = states[:, 0].astype(np.float64), states[:, 1].astype(np.float64)
    sizes = pol.sizes(states)
    assert sizes[vol > 1.3].mean() < sizes[vol < 0.7].mean() - 0.4
    all_sizes = np.asarray(BUCKETS)[None, :]
    per_bucket = true_reward(vol[:, None], score[:, None], all_sizes)
    behaviour_value = float((per_bucket * behaviour_probs()).sum(axis=1).mean())
    unsized_value = float(per_bucket[:, BASELINE].mean())
    learned_value = float(true_reward(vol, score, sizes).mean())
    assert learned_value > behaviour_value + 0.25, (learned_value, behaviour_value)
    assert learned_value > unsized_value + 0.15, (learned_value, unsized_value)


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_onnx_matches_d3rlpy_exactly(
    policies: dict[str, TrainedPolicy], algo: str, tmp_path: Path
) -> None:
    """The ONNX graph and d3rlpy's own predict give the same bucket on every one of several
    thousand random states (inside and well outside the training range)."""
    pol = policies[algo]
    rng = np.random.default_rng(11)
    states = np.r_[
        sample_states(3000, rng), rng.normal(1.0, 2.0, size=(3000, 2)).astype(np.float32)
    ]
    served = OnnxBucketPolicy(export_onnx(pol, tmp_path / "p.onnx"), BUCKETS)
    assert served.algo == algo and served.obs_dim == 2
    expected = pol.predict(states)
    assert len(np.unique(expected)) > 1  # not a constant policy: the check has teeth
    np.testing.assert_array_equal(served.actions(states), expected)
    np.testing.assert_array_equal(served.probs(states), pol.probs(states))
    np.testing.assert_array_equal(served.sizes(states), np.asarray(BUCKETS)[expected])
    np.testing.assert_array_equal(
        OnnxBucketPolicy(tmp_path / "p.onnx").actions(states[:10]), expected[:10]
    )
    with pytest.raises(ValueError, match="differ"):
        OnnxBucketPolicy(tmp_path / "p.onnx", (0.0, 1.0, 2.0, 3.0))


def test_iql_maps_its_multiplier_to_the_nearest_bucket(
    policies: dict[str, TrainedPolicy],
) -> None:
    """IQL's actor outputs a continuous multiplier; the policy's bucket is the nearest one."""
    pol = policies["iql"]
    states = sample_states(500, np.random.default_rng(3))
    raw = pol.learner.predict(states)
    assert raw.shape == (500, 1)
    assert raw.min() >= min(BUCKETS) - 1e-6 and raw.max() <= max(BUCKETS) + 1e-6
    np.testing.assert_array_equal(pol.predict(states), nearest_bucket(raw, BUCKETS))
    np.testing.assert_array_equal(nearest_bucket(np.array([0.25, 0.26, 1.49]), BUCKETS), [0, 1, 3])


def test_same_seed_same_policy(market: Transitions) -> None:
    """Two trainings with the same seed give identical Q-values (hence actions); the global
    RNGs are restored afterwards."""
    state = np.random.get_state()[1].copy()
    a = train_policy(market, "cql", n_steps=60, batch_size=64, seed=5, threads=1)
    b = train_policy(market, "cql", n_steps=60, batch_size=64, seed=5, threads=1)
    c = train_policy(market, "cql", n_steps=60, batch_size=64, seed=6, threads=1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    states = sample_states(2000, np.random.default_rng(4))
    np.testing.assert_array_equal(a.q_values(states), b.q_values(states))
    np.testing.assert_array_equal(a.predict(states), b.predict(states))
    assert not np.array_equal(a.q_values(states), c.q_values(states))


def test_save_and_load_round_trip(policies: dict[str, TrainedPolicy], tmp_path: Path) -> None:
    pol = policies["cql"]
    out = pol.save(tmp_path / "policy")
    assert {p.name for p in out.iterdir()} == {"model.d3", "policy.onnx", "meta.json"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["algo"] == "cql" and meta["buckets"] == list(BUCKETS)
    back = load_policy(out)
    states = sample_states(1000, np.random.default_rng(5))
    np.testing.assert_array_equal(back.predict(states), pol.predict(states))
    np.testing.assert_allclose(back.q_values(states), pol.q_values(states))
    np.testing.assert_array_equal(
        OnnxBucketPolicy(out / "policy.onnx").actions(states), pol.predict(states)
    )


def test_rejects_bad_inputs(market: Transitions) -> None:
    with pytest.raises(ValueError, match="algo"):
        train_policy(market, "dqn", n_steps=1, batch_size=8, seed=0)  # type: ignore[arg-type]
    bad = Transitions(**{**market.__dict__, "reward": np.where(market.step == 3, np.nan, 0.0)})
    with pytest.raises(ValueError, match="non-finite"):
        train_policy(bad, "cql", n_steps=1, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="hyperparameters"):
        train_policy(market, "cql", n_steps=1, batch_size=8, seed=0, not_a_field=1)


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_serving_imports_neither_d3rlpy_nor_torch(
    policies: dict[str, TrainedPolicy], tmp_path: Path
) -> None:
    """A fresh interpreter loads and runs the ONNX policy without importing d3rlpy or torch."""
    path = tmp_path / "policy.onnx"
    export_onnx(policies["cql"], path)
    proc = _run_python(
        f"""
        import sys
        import numpy as np
        from trademl.models.offline_rl.serving import OnnxBucketPolicy
        pol = OnnxBucketPolicy({str(path)!r}, {BUCKETS!r})
        print(pol.sizes(np.array([[0.6, 0.5], [1.4, 0.5]], np.float32)).tolist())
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "d3rlpy", "gym"))
        print("HEAVY", heavy)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_training_emits_no_warnings_or_log_lines() -> None:
    """In a fresh interpreter (so d3rlpy's import runs too), with every warning shown and
    INFO logging on stderr, importing d3rlpy, training both algorithms and exporting print
    nothing — and d3rlpy leaves structlog unconfigured."""
    proc = _run_python(
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from tests.trademl.models.offline_rl.test_algos import synthetic_market
        from trademl.models.offline_rl.algos import train_policy
        from trademl.models.offline_rl.export import export_onnx
        data = synthetic_market(n=400)
        for algo in ("cql", "iql"):
            export_onnx(train_policy(data, algo, n_steps=10, batch_size=32, seed=0, threads=1))
        import structlog
        assert not structlog.is_configured()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == "", (proc.stdout, proc.stderr)
