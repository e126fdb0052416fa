"""GRPO sizing-policy throughput: state-action samples per second on 2 CPU threads.

`grpo_update_throughput`: one `grpo_update` call on a batch of B states does the whole step —
forward pass (which also parameterizes the sampling), G Beta draws per state, rewards,
group advantages, then per inner epoch the fused log-prob/ratio/KL loss, backward, gradient
clipping and the Adam step. value = B·G·inner_epochs / median seconds per call. The reference
is the same update written the plain way (torch.distributions.Beta, autograd through the
per-sample log-prob, torch.std, a second network pass for the reference policy), timed in the
same run. `grpo_fit_throughput` is end to end: GRPOSizer.fit on a synthetic frame (per-epoch
previous-position pass, shuffling, validation Sharpe included), rows·G·inner·epochs / fit s.

    python -m benchmarks.policy_bench [--quick] [--threads 2] [--batch 16384]

OMP_WAIT_POLICY defaults to PASSIVE here (set before torch loads): on a box shared with other
jobs, spinning OpenMP workers that lose their core stall every parallel region (measured ~6×
slower at load 4 on 2 cores); an explicit OMP_WAIT_POLICY in the environment wins.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

TARGET_SAMPLES_PER_S = 1_000_000.0


def _log(msg: str) -> None:
    print(f"[policy_bench] {msg}", file=sys.stderr, flush=True)


def _median_s(fn: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float]:
    """(median, min) seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def _batch(n: int, n_features: int, net: torch.nn.Module, seed: int = 1):
    from trademl.models.policy.grpo import Batch, reference_concentrations

    g = torch.Generator().manual_seed(seed)
    state = torch.randn(n, n_features, generator=g) * 0.01
    state[:, 1] = state[:, 1].abs() + 0.01  # vol > 0
    ra, rb = reference_concentrations(net, state)
    y = torch.randn(n, generator=g) * 0.02
    return Batch(state, y, state[:, 1], torch.sign(state[:, 0]), torch.zeros(n), ra, rb)


def naive_update(net, ref, opt, batch, params) -> None:
    """The plain-torch GRPO step the fused one is measured against (same maths)."""
    from trademl.models.policy.beta import k3_kl, position, risk_penalty, trading_pnl

    g = params.group_size
    with torch.no_grad():
        a, b = net.concentrations(batch.state)
        dist = torch.distributions.Beta(a[:, None].expand(-1, g), b[:, None].expand(-1, g))
        x = dist.sample().clamp(1e-6, 1 - 1e-6)
        old_lp = dist.log_prob(x)
        ra, rb = ref.concentrations(batch.state)
        ref_lp = torch.distributions.Beta(ra[:, None], rb[:, None]).log_prob(x)
        pos = position(2 * x, batch.sign[:, None])
        r = trading_pnl(pos, batch.y[:, None], batch.prev_pos[:, None], params.cost_bps)
        r = r - risk_penalty(pos, batch.vol[:, None], params.risk_aversion)
        adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + params.adv_eps)
    for _ in range(params.inner_epochs):
        a, b = net.concentrations(batch.state)
        lp = torch.distributions.Beta(a[:, None], b[:, None]).log_prob(x)
        ratio = torch.exp(lp - old_lp)
        eps = params.clip_eps
        surr = torch.minimum(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)
        loss = -(surr - params.kl_beta * k3_kl(lp, ref_lp)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), params.max_grad_norm)
        opt.step()


def update_case(batch: int, repeats: int, inner_epochs: int, threads: int) -> dict:
    """Fused grpo_update throughput, with the naive reference beside it."""
    import copy

    from trademl.models.policy.grpo import (
        GRPOParams,
        grpo_update,
        init_generator,
        make_optimizer,
    )
    from trademl.models.policy.network import BetaPolicyNet

    params = GRPOParams(batch_size=batch, inner_epochs=inner_epochs)
    gen = init_generator(params)
    net = BetaPolicyNet(3, params.hidden, generator=gen)
    ref = copy.deepcopy(net).requires_grad_(False)
    b = _batch(batch, 3, net)
    opt = make_optimizer(net, params)
    samples = batch * params.group_size * inner_epochs
    _log(f"fused grpo_update: {batch} states × G={params.group_size} × {inner_epochs} inner …")
    med, best = _median_s(lambda: grpo_update(net, opt, b, params, gen), repeats)
    net2 = copy.deepcopy(ref).requires_grad_(True)
    opt2 = torch.optim.Adam(net2.parameters(), lr=params.lr)
    _log("naive reference update …")
    torch.manual_seed(0)
    ref_med, _ = _median_s(lambda: naive_update(net2, ref, opt2, b, params), max(3, repeats // 3))
    value = samples / med
    return {
        "name": "grpo_update_throughput" + ("" if inner_epochs == 1 else f"_inner{inner_epochs}"),
        "value": round(value),
        "unit": "state-action samples/s",
        "target": TARGET_SAMPLES_PER_S,
        "ok": value >= TARGET_SAMPLES_PER_S,
        "batch_states": batch,
        "group_size": params.group_size,
        "inner_epochs": inner_epochs,
        "hidden": list(params.hidden),
        "torch_threads": threads,
        "step_ms_median": round(med * 1e3, 2),
        "step_ms_min": round(best * 1e3, 2),
        "best_samples_per_s": round(samples / best),
        "naive_step_ms": round(ref_med * 1e3, 2),
        "ratio_naive_over_fused": round(ref_med / med, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def fit_case(symbols: int, sessions: int, epochs: int, batch: int, threads: int) -> dict:
    """End-to-end GRPOSizer.fit throughput on a planted synthetic frame."""
    import polars as pl

    from trademl.models.policy import GRPOParams, GRPOSizer

    rng = np.random.default_rng(0)
    n = symbols * sessions
    vol = rng.uniform(0.01, 0.03, n)
    y_hat = rng.choice([-1.0, 1.0], n) * rng.uniform(0.1, 1.9, n) * 2.0 * vol**2
    frame = pl.DataFrame(
        {
            "session": np.repeat(np.arange(sessions), symbols),
            "symbol": np.tile(np.arange(symbols).astype(str), sessions),
            "y_hat": y_hat,
            "vol": vol,
            "trend": rng.normal(0, 0.01, n),
            "y": y_hat + vol * rng.standard_normal(n),
        }
    )
    params = GRPOParams(epochs=epochs, patience=epochs + 1, batch_size=batch)
    _log(f"GRPOSizer.fit: {symbols} symbols × {sessions} sessions, {epochs} epochs …")
    GRPOSizer(params=GRPOParams(epochs=1, batch_size=batch)).fit(frame.head(symbols * 50))
    t0 = time.perf_counter()
    model = GRPOSizer(params=params).fit(frame)
    wall = time.perf_counter() - t0
    done = len(model.history_) - 1
    samples = model.n_train_ * params.group_size * params.inner_epochs * done
    return {
        "name": "grpo_fit_throughput",
        "value": round(samples / wall),
        "unit": "state-action samples/s",
        "target": TARGET_SAMPLES_PER_S,
        "ok": samples / wall >= TARGET_SAMPLES_PER_S,
        "fit_s": round(wall, 2),
        "train_rows": model.n_train_,
        "epochs_run": done,
        "batch_states": batch,
        "group_size": params.group_size,
        "inner_epochs": params.inner_epochs,
        "torch_threads": threads,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.policy_bench")
    p.add_argument("--quick", action="store_true", help="smoke sizes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="states per GRPO batch")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    batch = a.batch or (4096 if a.quick else 16384)
    extra = {"mode": "quick"} if a.quick else {}
    lines = [
        update_case(batch, 5 if a.quick else 30, 1, a.threads),
        update_case(batch, 5 if a.quick else 30, 2, a.threads),
        fit_case(*((50, 300, 2) if a.quick else (200, 1250, 3)), batch, a.threads),
    ]
    for line in lines:
        print(json.dumps(line | extra), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
