"""The policy's math against hand-worked values, closed forms and autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from trademl.models.policy import (
    Batch,
    BetaPolicyNet,
    GRPOParams,
    beta_entropy,
    beta_log_prob,
    group_advantages,
    k3_kl,
    position,
    risk_penalty,
    sample_beta,
    trading_pnl,
)
from trademl.models.policy.beta import sample_gamma
from trademl.models.policy.grpo import grpo_loss, prepare


def test_group_advantages_issue_example_uses_sample_std() -> None:
    r = torch.tensor([[1.0, 0, 0, 1, 1, 0, 0, 0]], dtype=torch.float64)
    adv = group_advantages(r, eps=0.0)
    # mean 3/8; sample variance (3·0.625² + 5·0.375²)/7 = 1.875/7
    sd = math.sqrt(1.875 / 7)
    assert adv[0, 0].item() == pytest.approx(0.625 / sd, abs=1e-12)
    assert adv[0, 0].item() == pytest.approx(1.2076, abs=1e-4)
    assert adv[0, 1].item() == pytest.approx(-0.7246, abs=1e-4)
    # population std (ddof=0) would give 1.1180 / −0.6708: the test tells them apart
    assert abs(adv[0, 0].item() - 1.1180) > 0.05
    np.testing.assert_allclose(adv.sum().item(), 0.0, atol=1e-12)


def test_group_advantages_constant_group_is_zero_and_groups_independent() -> None:
    r = torch.tensor([[2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    adv = group_advantages(r)
    assert torch.all(adv[0] == 0)
    expected = (np.arange(4) - 1.5) / np.std(np.arange(4), ddof=1)
    np.testing.assert_allclose(adv[1].numpy(), expected, atol=1e-5)


def test_beta_log_prob_and_entropy_match_scipy() -> None:
    a = torch.tensor([1.2, 3.0, 7.5], dtype=torch.float64)
    b = torch.tensor([4.0, 1.01, 2.5], dtype=torch.float64)
    x = torch.tensor([0.1, 0.5, 0.93], dtype=torch.float64)
    np.testing.assert_allclose(
        beta_log_prob(x, a, b).numpy(), stats.beta.logpdf(x, a, b), rtol=1e-10
    )
    np.testing.assert_allclose(beta_entropy(a, b).numpy(), stats.beta.entropy(a, b), rtol=1e-10)


def test_sample_beta_moments_and_range() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.tensor([1.0, 1.3, 6.0], dtype=torch.float64)
    b = torch.tensor([1.0, 2.7, 2.0], dtype=torch.float64)
    x = sample_beta(a, b, 40_000, g)
    assert x.shape == (3, 40_000)
    assert float(x.min()) > 0 and float(x.max()) < 1
    mean, var = stats.beta.stats(a.numpy(), b.numpy(), moments="mv")
    np.testing.assert_allclose(x.mean(1).numpy(), mean, atol=4e-3)
    np.testing.assert_allclose(x.var(1).numpy(), var, rtol=0.04)
    # the whole distribution, not only two moments
    for i in range(3):
        ks = stats.kstest(x[i].numpy(), stats.beta(a[i].item(), b[i].item()).cdf)
        assert ks.pvalue > 1e-3


def test_sample_gamma_is_seeded_and_matches_gamma_moments() -> None:
    alpha = torch.tensor([1.0, 2.5, 20.0], dtype=torch.float64)
    g1 = sample_gamma(alpha, 30_000, torch.Generator().manual_seed(7))
    g2 = sample_gamma(alpha, 30_000, torch.Generator().manual_seed(7))
    assert torch.equal(g1, g2)
    np.testing.assert_allclose(g1.mean(1).numpy(), alpha.numpy(), rtol=0.02)
    np.testing.assert_allclose(g1.var(1).numpy(), alpha.numpy(), rtol=0.05)


def _net(n_features: int = 3, seed: int = 0) -> BetaPolicyNet:
    net = BetaPolicyNet(n_features, (8, 8), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # move the head off its zero start so outputs vary by state
        net.head.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(seed + 1))
        net.head.bias.normal_(0, 1.0, generator=torch.Generator().manual_seed(seed + 2))
    return net


def test_beta_head_properties() -> None:
    net = _net()
    state = torch.randn(500, 3, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        a, b = net.concentrations(state)
        det = net(state)
        acts = net.sample(state, 16, torch.Generator().manual_seed(2))
    assert torch.all(a > 1) and torch.all(b > 1)
    assert float(a.std()) > 0.1  # the head really depends on the state
    torch.testing.assert_close(det, 2 * a / (a + b))
    assert torch.all((det > 0) & (det < 2))
    assert acts.shape == (500, 16)
    assert torch.all((acts >= 0) & (acts <= 2))


def test_sampled_action_mean_is_the_deterministic_action() -> None:
    net = _net(seed=4)
    state = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        acts = net.sample(state, 50_000, torch.Generator().manual_seed(6))
        det = net(state)
    np.testing.assert_allclose(acts.mean(1).numpy(), det.numpy(), atol=0.01)


def test_initial_policy_is_constant_size_one() -> None:
    net = BetaPolicyNet(3, (8,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        det = net(torch.randn(50, 3))
    torch.testing.assert_close(det, torch.ones(50))


def test_orientation_makes_the_policy_symmetric_in_forecast_sign() -> None:
    """Flipping y_hat and trend only flips the sign input: with its weight zeroed the size is
    unchanged, so the net can see the magnitude |y_hat| directly."""
    net = _net(seed=9)
    with torch.no_grad():
        net.body[0].weight[:, 1] = 0.0  # the sign(y_hat) input
        s = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
        flipped = s * torch.tensor([-1.0, 1.0, -1.0])
        torch.testing.assert_close(net(s), net(flipped))


def test_k3_kl_non_negative_and_zero_for_identical_policies() -> None:
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(1000, generator=g)
    ref = lp + torch.randn(1000, generator=g)
    kl = k3_kl(lp, ref)
    assert torch.all(kl >= 0)
    assert float(kl.max()) > 0.1
    assert torch.all(k3_kl(lp, lp) == 0)


def test_k3_kl_is_unbiased_for_beta_kl() -> None:
    """E_{x~p}[k3] = KL(p ‖ q); closed form for Betas via scipy quadrature."""
    a, b, qa, qb = 2.0, 3.0, 2.5, 2.0
    x = sample_beta(torch.tensor([a]), torch.tensor([b]), 200_000, torch.Generator().manual_seed(1))
    x = x.double()
    lp = beta_log_prob(x, torch.tensor(a), torch.tensor(b))
    lq = beta_log_prob(x, torch.tensor(qa), torch.tensor(qb))
    from scipy import integrate

    p, q = stats.beta(a, b), stats.beta(qa, qb)
    kl, _ = integrate.quad(lambda t: p.pdf(t) * (p.logpdf(t) - q.logpdf(t)), 0, 1)
    assert float(k3_kl(lp, lq).mean()) == pytest.approx(kl, rel=0.03)


def test_position_pnl_and_penalty_by_hand() -> None:
    a = np.array([0.5, 2.0, 1.0])
    y_hat = np.array([-0.01, 0.02, 0.0])
    pos = position(a, y_hat)
    np.testing.assert_array_equal(pos, [-0.5, 2.0, 0.0])
    torch.testing.assert_close(
        position(torch.tensor(a), torch.tensor(y_hat)),
        torch.tensor([-0.5, 2.0, 0.0], dtype=torch.float64),
    )
    # pnl = pos·y − 10 bp·|pos − prev|
    pnl = trading_pnl(pos, np.array([0.01, -0.01, 0.03]), np.array([0.5, 2.0, -1.0]), 10.0)
    np.testing.assert_allclose(pnl, [-0.005 - 1e-3, -0.02, 0.0 - 1e-3])
    np.testing.assert_allclose(risk_penalty(pos, np.full(3, 0.02), 4.0), [2e-4, 32e-4, 0.0])


def _fixed_problem(dtype=torch.float64):
    B = 64
    g = torch.Generator().manual_seed(0)
    a0 = torch.rand(B, dtype=dtype, generator=g) * 3 + 1.1
    b0 = torch.rand(B, dtype=dtype, generator=g) * 3 + 1.1
    batch = Batch(
        state=torch.randn(B, 3, dtype=dtype, generator=g),
        y=torch.randn(B, dtype=dtype, generator=g) * 0.02,
        vol=torch.rand(B, dtype=dtype, generator=g) * 0.02 + 0.01,
        sign=torch.sign(torch.randn(B, dtype=dtype, generator=g)),
        prev_pos=torch.randn(B, dtype=dtype, generator=g),
        ref_alpha=a0 + 0.3,
        ref_beta=b0 - 0.2,
    )
    params = GRPOParams(kl_beta=0.3, clip_eps=0.1, cost_bps=20.0)
    fx, _ = prepare(a0, b0, batch, params, g)
    a = a0 + 0.15 * torch.randn(B, dtype=dtype, generator=g)
    b = b0 + 0.15 * torch.randn(B, dtype=dtype, generator=g)
    return a, b, batch, params, fx


def test_fused_loss_and_gradient_match_plain_autograd() -> None:
    a, b, batch, params, fx = _fixed_problem()
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    loss, kl, clip_frac = grpo_loss(a1, b1, fx, params.kl_beta)
    ga, gb = torch.autograd.grad(loss, (a1, b1))

    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    x = torch.exp(fx.log_x)
    lp = beta_log_prob(x, a2[:, None], b2[:, None])
    old = beta_log_prob(x, fx.old_alpha, fx.old_beta)
    ref = beta_log_prob(x, batch.ref_alpha[:, None], batch.ref_beta[:, None])
    ratio = torch.exp(lp - old)
    eps = params.clip_eps
    surr = torch.minimum(ratio * fx.adv, ratio.clamp(1 - eps, 1 + eps) * fx.adv)
    loss2 = -(surr - params.kl_beta * k3_kl(lp, ref)).mean()
    ga2, gb2 = torch.autograd.grad(loss2, (a2, b2))

    assert 0.02 < float(clip_frac) < 0.9  # both clipped and unclipped samples present
    torch.testing.assert_close(loss, loss2, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(kl, k3_kl(lp, ref).mean(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ga, ga2, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(gb, gb2, rtol=1e-7, atol=1e-12)


def test_fused_loss_gradcheck() -> None:
    a, b, _, params, fx = _fixed_problem()
    a, b = a[:8].clone().requires_grad_(), b[:8].clone().requires_grad_()
    fx8 = type(fx)(*(t[:8] for t in fx))
    assert torch.autograd.gradcheck(
        lambda u, v: grpo_loss(u, v, fx8, params.kl_beta)[0], (a, b), eps=1e-7, atol=1e-6
    )


def test_prepared_advantages_reward_the_better_size() -> None:
    """With a strong positive realized return and no costs/penalty, larger sizes earn more, so
    the advantage is increasing in the sampled size within every group."""
    B = 32
    g = torch.Generator().manual_seed(0)
    ones = torch.ones(B)
    batch = Batch(torch.zeros(B, 3), ones * 0.05, ones * 0.01, ones, 0 * ones, ones * 2, ones * 2)
    params = GRPOParams(cost_bps=0.0, risk_aversion=0.0)
    fx, reward = prepare(ones * 2, ones * 2, batch, params, g)
    order_x = torch.argsort(fx.log_x, dim=1)
    order_adv = torch.argsort(fx.adv, dim=1)
    assert torch.equal(order_x, order_adv)
    assert float(reward) > 0
