"""The thesis network: features → 64 → ReLU → 64 → ReLU, then three heads — structure (which
of the 6 thesis sections it writes, Bernoulli each), claims (which of the 8 evidence claims it
asserts, Bernoulli each) and decision (strong_sell … strong_buy, categorical; signs
[−1, −1, 0, 1, 1])."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DECISIONS", "DECISION_SIGNS", "N_CLAIMS", "N_SECTIONS", "SECTIONS", "build_model"]

SECTIONS = ("summary", "momentum", "risk", "liquidity", "evidence", "decision")
DECISIONS = ("strong_sell", "sell", "hold", "buy", "strong_buy")
DECISION_SIGNS = np.array([-1.0, -1.0, 0.0, 1.0, 1.0])
N_SECTIONS, N_CLAIMS = len(SECTIONS), 8
HIDDEN = 64


def build_model(n_features: int, n_claims: int = N_CLAIMS, seed: int = 0) -> Any:
    """A `ThesisModel` with weights drawn from `seed` (torch is imported here, not at import
    of the package)."""
    import torch
    from torch import nn
    from torch.distributions import Bernoulli, Categorical

    class ThesisModel(nn.Module):
        """See the module docstring; every method takes a (batch, features) float tensor."""

        def __init__(self) -> None:
            super().__init__()
            self.n_features, self.n_claims = n_features, n_claims
            self.encoder = nn.Sequential(
                nn.Linear(n_features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU()
            )
            self.structure = nn.Linear(HIDDEN, N_SECTIONS)
            self.claims = nn.Linear(HIDDEN, n_claims)
            self.decision = nn.Linear(HIDDEN, len(DECISIONS))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            h = self.encoder(x)
            out = {
                "structure_logits": self.structure(h),
                "claims_logits": self.claims(h),
                "decision_logits": self.decision(h),
            }
            out["structure_probs"] = torch.sigmoid(out["structure_logits"])
            out["claims_probs"] = torch.sigmoid(out["claims_logits"])
            out["decision_probs"] = torch.softmax(out["decision_logits"], dim=-1)
            return out

        def _dists(self, x: torch.Tensor) -> tuple[Any, Any, Any]:
            out = self.forward(x)
            return (
                Bernoulli(logits=out["structure_logits"]),
                Bernoulli(logits=out["claims_logits"]),
                Categorical(logits=out["decision_logits"]),
            )

        def log_prob(self, x: torch.Tensor, actions: dict[str, torch.Tensor]) -> torch.Tensor:
            """Σ over heads of the log-probability of `actions` (batch,)."""
            s, c, d = self._dists(x)
            return (
                s.log_prob(actions["structure"]).sum(-1)
                + c.log_prob(actions["claims"]).sum(-1)
                + d.log_prob(actions["decision"])
            )

        def sample(
            self, x: torch.Tensor, generator: torch.Generator | None = None
        ) -> dict[str, torch.Tensor]:
            """Sampled actions of every head, their summed log-probability and entropy."""
            out = self.forward(x)
            u = lambda shape: torch.rand(shape, generator=generator)  # noqa: E731
            structure = (u(out["structure_probs"].shape) < out["structure_probs"]).float()
            claims = (u(out["claims_probs"].shape) < out["claims_probs"]).float()
            cdf = out["decision_probs"].cumsum(-1)
            decision = (u((x.shape[0], 1)) > cdf).sum(-1).clamp(max=len(DECISIONS) - 1)
            actions = {"structure": structure, "claims": claims, "decision": decision}
            s, c, d = self._dists(x)
            return {
                **actions,
                "log_prob": self.log_prob(x, actions),
                "entropy": s.entropy().sum(-1) + c.entropy().sum(-1) + d.entropy(),
            }

        @torch.no_grad()
        def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            """Deterministic: sections and claims with probability > ½, the likeliest
            decision, and its probability (the confidence)."""
            out = self.forward(x)
            conf, decision = out["decision_probs"].max(-1)
            return {
                "structure": (out["structure_probs"] > 0.5).float(),
                "claims": (out["claims_probs"] > 0.5).float(),
                "decision": decision,
                "confidence": conf,
                "expected_sign": out["decision_probs"]
                @ torch.as_tensor(DECISION_SIGNS, dtype=out["decision_probs"].dtype),
            }

        def generate_thesis(self, x: torch.Tensor, **context: Any) -> dict[str, Any]:
            """The JSON thesis of one row of features (`x`: (features,) or (1, features));
            `context` names it: symbol, date, claim_names, evidence, model_version, holds
            (`trademl.models.theses.schema.thesis_document`)."""
            from trademl.models.theses.schema import thesis_document

            pred = self.predict(x.reshape(1, -1))
            return thesis_document(
                structure=pred["structure"][0].tolist(),
                claims=pred["claims"][0].tolist(),
                decision=int(pred["decision"][0]),
                confidence=float(pred["confidence"][0]),
                **context,
            )

    torch.manual_seed(seed)
    return ThesisModel()
