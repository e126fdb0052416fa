"""GRPO sizing policy: sizes positions in [0, 2] along out-of-sample forecasts.

A Beta-headed MLP on the state [y_hat, vol, trend, extras] is trained by group-relative policy
optimization (`GRPOSizer`, `GRPOParams`), judged out of sample against constant and
vol-targeted sizing (`evaluate_policy`), and served through ONNX (`to_onnx`, `OnnxPolicy`) or
a saved torch policy (`save_policy`, `load_policy`). position = size · sign(y_hat).
"""

from trademl.models.policy.beta import (
    beta_entropy,
    beta_log_prob,
    group_advantages,
    k3_kl,
    position,
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
from trademl.models.policy.serving import OnnxPolicy, load_policy, save_policy, to_onnx
from trademl.models.policy.sizer import GRPOSizer, NotFittedError

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
