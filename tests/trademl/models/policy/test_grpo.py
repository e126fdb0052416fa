"""GRPO training: a planted closed-form optimum is learned, runs are seeded and
deterministic, the split is time-ordered and the standardization sees training rows only."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch
from scipy import stats

from tests.trademl.models.policy.synthetic import planted_frame
from trademl.models.policy import (
    Batch,
    BetaPolicyNet,
    GRPOParams,
    GRPOSizer,
    beta_entropy,
    evaluate_policy,
    grpo_update,
)
from trademl.models.policy.grpo import make_optimizer, previous_reference
from trademl.models.policy.network import orient
from trademl.models.policy.sizer import NotFittedError

RISK_AVERSION = 10.0
FAST = GRPOParams(
    risk_aversion=RISK_AVERSION,
    cost_bps=0.0,
    hidden=(16, 16),
    batch_size=1024,
    epochs=12,
    patience=4,
    seed=0,
    num_threads=1,  # tiny batches: intra-op threads only add overhead on a busy box
)


@pytest.fixture(scope="module")
def trained() -> tuple[GRPOSizer, pl.DataFrame, np.ndarray]:
    train, _ = planted_frame(20, 1000, seed=1, risk_aversion=RISK_AVERSION)
    test, size_opt = planted_frame(20, 1000, seed=2, risk_aversion=RISK_AVERSION, start=1000)
    return GRPOSizer(params=FAST).fit(train), test, size_opt


def test_learns_the_closed_form_optimal_size(trained) -> None:
    model, test, size_opt = trained
    action = model.act(test)
    assert size_opt.min() > 0.05 and size_opt.max() < 1.95  # the optimum is interior
    assert stats.spearmanr(action, size_opt).statistic > 0.8
    assert np.corrcoef(action, size_opt)[0, 1] > 0.8
    assert model.best_epoch_ > 0  # training beat the initial constant-size policy
    assert model.best_val_sharpe_ > model.history_[0]["val_sharpe"]


def test_out_of_sample_sharpe_beats_constant_sizing(trained) -> None:
    model, test, _ = trained
    res = {r["strategy"]: r for r in evaluate_policy(model, test).iter_rows(named=True)}
    assert set(res) == {"policy", "long_1", "sign", "vol_target"}
    assert res["policy"]["sharpe"] > res["sign"]["sharpe"] + 0.3
    assert res["policy"]["sharpe"] > res["vol_target"]["sharpe"]
    assert res["policy"]["sharpe"] > res["long_1"]["sharpe"]
    assert 0 <= res["policy"]["max_drawdown"] < 1


def test_early_stopping_restores_the_best_epoch(trained) -> None:
    model, _, _ = trained
    scores = [h["val_sharpe"] for h in model.history_]
    assert len(scores) <= FAST.epochs + 1
    assert model.best_val_sharpe_ == max(scores)
    assert scores.index(max(scores)) == model.best_epoch_
    if len(scores) < FAST.epochs + 1:  # stopped early: `patience` epochs after the best
        assert len(scores) - 1 - model.best_epoch_ == FAST.patience


def test_split_is_time_ordered_and_standardization_uses_training_rows_only() -> None:
    frame, _ = planted_frame(5, 100, seed=3, risk_aversion=RISK_AVERSION)
    # make the validation (latest) sessions look different: a leak would move the mean
    late = pl.col("session") >= 70
    frame = frame.with_columns(pl.when(late).then(pl.col("vol") * 10).otherwise("vol"))
    params = dataclasses.replace(FAST, epochs=1, val_frac=0.2, val_embargo=3)
    model = GRPOSizer(params=params).fit(frame)
    assert model.val_start_ == 80 and model.val_end_ == 99
    assert model.train_end_ == 76  # sessions 77-79 embargoed
    assert model.n_train_ == 5 * 77 and model.n_val_ == 5 * 20
    train_rows = frame.filter(pl.col("session") <= 76).select("y_hat", "vol", "trend")
    z = orient(torch.as_tensor(train_rows.to_numpy())).numpy()
    np.testing.assert_allclose(model.state_mean_, z.mean(0), rtol=1e-12)
    np.testing.assert_allclose(model.state_std_, z.std(0), rtol=1e-12)


def test_same_seed_same_weights_other_seed_different() -> None:
    frame, _ = planted_frame(10, 120, seed=4, risk_aversion=RISK_AVERSION)
    params = dataclasses.replace(FAST, epochs=2, patience=5, batch_size=256)
    runs = [GRPOSizer(params=params).fit(frame) for _ in range(2)]
    other = GRPOSizer(params=dataclasses.replace(params, seed=1)).fit(frame)
    sd0, sd1, sd2 = (m.policy_.state_dict() for m in (*runs, other))
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    assert [h["val_sharpe"] for h in runs[0].history_] == [
        h["val_sharpe"] for h in runs[1].history_
    ]
    assert not all(torch.equal(sd0[k], sd2[k]) for k in sd0)


def test_fit_does_not_touch_global_rng_state() -> None:
    frame, _ = planted_frame(5, 60, seed=5, risk_aversion=RISK_AVERSION)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    GRPOSizer(params=dataclasses.replace(FAST, epochs=1)).fit(frame)
    assert torch.equal(before, torch.get_rng_state())
    assert not torch.are_deterministic_algorithms_enabled()


def test_previous_reference_is_the_previous_session_position() -> None:
    net = BetaPolicyNet(3, (4,), generator=torch.Generator().manual_seed(0))  # size 1 everywhere
    state = torch.zeros(4, 3)
    sign = torch.tensor([1.0, -1.0, 1.0, 0.0])
    prev_idx = torch.tensor([-1, 0, 1, -1])
    prev = previous_reference(net, state, sign, prev_idx)
    torch.testing.assert_close(prev, torch.tensor([0.0, 1.0, -1.0, 0.0]))


def test_cost_reference_changes_training() -> None:
    frame, _ = planted_frame(10, 120, seed=6, risk_aversion=RISK_AVERSION)
    base = dataclasses.replace(FAST, epochs=2, patience=5, batch_size=256, cost_bps=50.0)
    a = GRPOSizer(params=base).fit(frame)
    b = GRPOSizer(params=dataclasses.replace(base, cost_reference="zero")).fit(frame)
    assert a.history_[1]["reward"] != b.history_[1]["reward"]


def test_extra_features_and_nonfinite_rows() -> None:
    frame, _ = planted_frame(5, 80, seed=7, risk_aversion=RISK_AVERSION)
    frame = frame.with_columns(liq=pl.Series(np.linspace(0, 1, frame.height)))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("y")).alias("y")
    )
    model = GRPOSizer(params=dataclasses.replace(FAST, epochs=1), extra_features=["liq"])
    model.fit(frame)
    assert model.feature_names_ == ("y_hat", "vol", "trend", "liq")
    assert model.state_mean_.shape == (5,)
    out = model.act(frame)
    assert out.shape == (frame.height,) and np.isfinite(out).all()
    bad = frame.with_columns(pl.lit(np.nan).alias("vol"))
    assert np.isnan(model.act(bad)).all()


def test_errors_name_what_is_wrong() -> None:
    frame, _ = planted_frame(3, 40, seed=8, risk_aversion=RISK_AVERSION)
    with pytest.raises(ValueError, match="'trend'"):
        GRPOSizer(params=FAST).fit(frame.drop("trend"))
    with pytest.raises(ValueError, match="'session' has 1 null"):
        GRPOSizer(params=FAST).fit(
            frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 5)
                .then(None)
                .otherwise("session")
                .alias("session")
            )
        )
    with pytest.raises(ValueError, match="duplicate"):
        GRPOSizer(params=FAST).fit(pl.concat([frame, frame.head(1)]))
    with pytest.raises(ValueError, match="too few"):
        GRPOSizer(params=FAST).fit(frame.filter(pl.col("session") < 3))
    with pytest.raises(ValueError, match="group_size >= 2"):
        GRPOParams(group_size=1)
    with pytest.raises(NotFittedError):
        GRPOSizer().act(frame)


def _flat_batch(n: int, ref_alpha: float, ref_beta: float) -> Batch:
    """States whose every size earns the same reward (y = 0, no cost, no penalty): adv = 0."""
    z = torch.zeros(n)
    state = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
    return Batch(state, z, z + 0.01, torch.ones(n), z, z + ref_alpha, z + ref_beta)


def _entropy(net: BetaPolicyNet, state: torch.Tensor) -> float:
    with torch.no_grad():
        return float(beta_entropy(*net.concentrations(state)).mean())


def test_entropy_bonus_raises_entropy_when_rewards_are_flat() -> None:
    params = GRPOParams(kl_beta=0.0, entropy_coef=0.1, cost_bps=0.0, risk_aversion=0.0, lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    net = BetaPolicyNet(3, (8,), generator=gen)
    batch = _flat_batch(256, 2.0, 2.0)
    opt = make_optimizer(net, params)
    before = _entropy(net, batch.state)
    for _ in range(20):
        stats_ = grpo_update(net, opt, batch, params, gen)
    assert np.isfinite(float(stats_["entropy"]))
    assert _entropy(net, batch.state) > before + 0.05
    # without the bonus (and with no reward signal) nothing moves the policy
    still = BetaPolicyNet(3, (8,), generator=torch.Generator().manual_seed(0))
    flat = dataclasses.replace(params, entropy_coef=0.0)
    opt2 = make_optimizer(still, flat)
    for _ in range(5):
        grpo_update(still, opt2, batch, flat, gen)
    assert _entropy(still, batch.state) == pytest.approx(before, abs=1e-6)


def test_kl_penalty_pulls_towards_the_reference() -> None:
    """With flat rewards the only force is kl_beta·k3: the size moves from 1 (the initial
    policy, Beta(1.69, 1.69)) towards the reference's 2·5/(5+2) ≈ 1.43."""
    params = GRPOParams(kl_beta=1.0, cost_bps=0.0, risk_aversion=0.0, lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    net = BetaPolicyNet(3, (8,), generator=gen)
    batch = _flat_batch(512, 5.0, 2.0)
    opt = make_optimizer(net, params)
    kls = [float(grpo_update(net, opt, batch, params, gen)["kl"]) for _ in range(40)]
    assert kls[-1] < 0.5 * kls[0]
    with torch.no_grad():
        assert float(net(batch.state).mean()) > 1.2
