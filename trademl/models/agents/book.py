"""An agent's book over a panel, as it would have traded: from cash at the first week end, at
each week end t the policy reads the state (forecasts, 4-week returns, vols, and the weights
the previous targets drifted to over the week) and sets new target weights. Only data known
at t's close enter t's targets, so a longer panel never changes earlier ones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trademl.models.agents.env import WeeklyPanel, observation, portfolio_step

__all__ = ["agent_book"]


def agent_book(
    policy: Callable[[np.ndarray], np.ndarray], panel: WeeklyPanel, cost_bps: float
) -> np.ndarray:
    """(weeks × (names + 1)) target weights (names, then cash); `policy` maps a batch of
    observations to weights (e.g. `OnnxAgent.weights`)."""
    held = np.r_[np.zeros(panel.n_names), 1.0]
    out = []
    for t in range(panel.n_weeks):
        target = np.asarray(policy(observation(panel, t, held)[None, :])[0], dtype=np.float64)
        out.append(target)
        _, held = portfolio_step(target, held, panel.next_return[t], cost_bps)
    return np.stack(out) if out else np.zeros((0, panel.n_names + 1))
