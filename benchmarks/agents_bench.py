"""Allocation agent throughput (JSON lines)::

    python -m benchmarks.agents_bench [--steps 20000]

PPO (stable-baselines3, MlpPolicy 64×64, CPU) on the weekly portfolio environment over 15
names and 500 weeks of a synthetic panel: environment steps per second of `learn`, the
environment's own step rate, and SAC's for a tenth of the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from trademl.models.agents.env import WeeklyPanel, WeeklyPortfolioEnv
    from trademl.models.agents.train import AgentParams, train_agent

    p = argparse.ArgumentParser(prog="python -m benchmarks.agents_bench", description=__doc__)
    p.add_argument("--steps", type=int, default=20_000)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    weeks, names = 500, 15
    f = rng.standard_normal((weeks, names))
    panel = WeeklyPanel(
        f,
        0.02 * rng.standard_normal((weeks, names)),
        np.full((weeks, names), 0.02),
        0.002 + 0.01 * f + 0.02 * rng.standard_normal((weeks, names)),
        np.arange(weeks),
        tuple(f"S{i}" for i in range(names)),
    )
    env = WeeklyPortfolioEnv(panel, cost_bps=5.0, episode_weeks=26)
    env.reset(seed=0)
    t0, n = time.perf_counter(), 20_000
    for _ in range(n):
        _, _, _, done, _ = env.step(rng.uniform(-1, 1, names + 1))
        if done:
            env.reset()
    env_rate = n / (time.perf_counter() - t0)
    for algo, steps in (("ppo", args.steps), ("sac", max(args.steps // 10, 500))):
        t0 = time.perf_counter()
        train_agent(panel, AgentParams(algo=algo, steps=steps))
        rate = steps / (time.perf_counter() - t0)
        print(
            json.dumps(
                {
                    "name": f"{algo}_env_steps_per_s",
                    "value": round(rate),
                    "unit": "steps/s",
                    "steps": steps,
                    "names": names,
                    "env_only_steps_per_s": round(env_rate),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
