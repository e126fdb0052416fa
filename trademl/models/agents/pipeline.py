"""One agent training as the platform runs it: split the panel's weeks into training and the
last `held_out_weeks` (never trained on), train (`full`: every training week from scratch;
`finetune`: the last `finetune_weeks` training weeks from the champion's weights), evaluate
the agent, the equal-weight book and the champion on the held-out weeks, and gate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trademl.models.agents.env import WeeklyPanel
from trademl.models.agents.train import (
    AgentParams,
    agent_decision,
    book_metrics,
    equal_weight_returns,
    policy_returns,
    train_agent,
    training_metrics,
)
from trademl.models.gate import Decision

__all__ = ["AgentResult", "fit_agent", "split_weeks"]


@dataclass(frozen=True)
class AgentResult:
    """The trained model, its metrics, the verdict and the held-out weekly books."""

    model: Any
    metrics: dict[str, float]
    decision: Decision
    held_out_weeks: np.ndarray
    held_out_returns: np.ndarray
    equal_weight_returns: np.ndarray
    champion_returns: np.ndarray | None


def split_weeks(panel: WeeklyPanel, held_out_weeks: int) -> tuple[WeeklyPanel, WeeklyPanel]:
    """(training weeks, the last `held_out_weeks`); both need at least 2 weeks."""
    n = panel.n_weeks
    if n - held_out_weeks < 2 or held_out_weeks < 2:
        raise ValueError(
            f"agent: {n} weeks cannot hold out {held_out_weeks} and train on at least 2; "
            "lower agents.held_out_weeks or raise agents.train_years"
        )
    return panel.slice(0, n - held_out_weeks), panel.slice(n - held_out_weeks, n)


def fit_agent(
    panel: WeeklyPanel,
    params: AgentParams,
    *,
    mode: str,
    held_out_weeks: int,
    finetune_weeks: int,
    init: Any | None,
    champion: Any | None,
    margin: float,
    min_sharpe: float,
) -> AgentResult:
    """Train, evaluate and gate (module docstring); `init` is required for a finetune and
    `champion` (the current champion, when comparable) is evaluated on the same weeks."""
    if mode == "finetune" and init is None:
        raise ValueError("agent finetune: there is no model to start from")
    train, held = split_weeks(panel, held_out_weeks)
    if mode == "finetune":
        train = train.slice(max(train.n_weeks - finetune_weeks, 0), train.n_weeks)
    model = train_agent(train, params, init=init if mode == "finetune" else None)
    returns = policy_returns(model, held, params)
    equal = equal_weight_returns(held, params.cost_bps)
    champ = policy_returns(champion, held, params) if champion is not None else None
    out, ew = book_metrics(returns), book_metrics(equal)
    fitted = book_metrics(policy_returns(model, train, params))
    metrics = {
        **training_metrics(model),
        "train_sharpe": fitted["sharpe"],
        "held_out_sharpe": out["sharpe"],
        "held_out_cagr": out["cagr"],
        "held_out_max_drawdown": out["max_drawdown"],
        "equal_weight_sharpe": ew["sharpe"],
        "equal_weight_cagr": ew["cagr"],
        "n_train_weeks": float(train.n_weeks),
        "n_held_out_weeks": float(held.n_weeks),
    }
    champion_metrics = None
    if champ is not None:
        champion_metrics = book_metrics(champ)
        metrics |= {
            "champion_sharpe": champion_metrics["sharpe"],
            "champion_cagr": champion_metrics["cagr"],
        }
    decision = agent_decision(
        params.algo, out, ew, champion_metrics, margin=margin, min_sharpe=min_sharpe
    )
    return AgentResult(
        model=model,
        metrics={k: float(v) for k, v in metrics.items() if not math.isnan(v)},
        decision=decision,
        held_out_weeks=held.weeks,
        held_out_returns=returns,
        equal_weight_returns=equal,
        champion_returns=champ,
    )
