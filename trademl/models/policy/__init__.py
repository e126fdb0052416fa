"""GRPO sizing policy: sizes positions in [0, 2] along out-of-sample forecasts.

A Beta-headed MLP on the state [y_hat, vol, trend, extras] is trained by group-relative policy
optimization (`GRPOSizer`, `GRPOParams`), judged out of sample against constant and
vol-targeted sizing (`evaluate_policy`), and served through ONNX (`to_onnx`, `OnnxPolicy`) or
a saved torch policy (`save_policy`, `load_policy`). position = size · sign(y_hat).

Names resolve lazily (PEP 562): importing this package, `OnnxPolicy` or `position` never
imports torch (≈3 s); the training modules import it on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trademl.lazy import lazy_exports

if TYPE_CHECKING:
    from trademl.models.policy.actions import position
    from trademl.models.policy.beta import (
        beta_entropy,
        beta_log_prob,
        group_advantages,
        k3_kl,
        risk_penalty,
        sample_beta,
        trading_pnl,
    )
    from trademl.models.policy.evaluate import (
        baseline_positions,
        evaluate_policy,
        evaluate_positions,
        session_pnl,
    )
    from trademl.models.policy.grpo import Batch, GRPOParams, grpo_update
    from trademl.models.policy.network import BetaPolicyNet
    from trademl.models.policy.onnx_policy import OnnxPolicy
    from trademl.models.policy.serving import load_policy, save_policy, to_onnx
    from trademl.models.policy.sizer import GRPOSizer, NotFittedError

_EXPORTS: dict[str, str] = {
    "position": "actions",
    "beta_entropy": "beta",
    "beta_log_prob": "beta",
    "group_advantages": "beta",
    "k3_kl": "beta",
    "risk_penalty": "beta",
    "sample_beta": "beta",
    "trading_pnl": "beta",
    "baseline_positions": "evaluate",
    "evaluate_policy": "evaluate",
    "evaluate_positions": "evaluate",
    "session_pnl": "evaluate",
    "Batch": "grpo",
    "GRPOParams": "grpo",
    "grpo_update": "grpo",
    "BetaPolicyNet": "network",
    "OnnxPolicy": "onnx_policy",
    "load_policy": "serving",
    "save_policy": "serving",
    "to_onnx": "serving",
    "GRPOSizer": "sizer",
    "NotFittedError": "sizer",
}

__all__ = [
    "Batch",
    "BetaPolicyNet",
    "GRPOParams",
    "GRPOSizer",
    "NotFittedError",
    "OnnxPolicy",
    "baseline_positions",
    "beta_entropy",
    "beta_log_prob",
    "evaluate_policy",
    "evaluate_positions",
    "group_advantages",
    "grpo_update",
    "k3_kl",
    "load_policy",
    "position",
    "risk_penalty",
    "sample_beta",
    "save_policy",
    "session_pnl",
    "to_onnx",
    "trading_pnl",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
