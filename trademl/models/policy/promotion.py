"""Promotion rules of a sizing policy: on sessions after its training window the sized book's
net Sharpe (the platform's backtest and cost model) beats the unsized book's by a margin, the
daily improvement is significant (t-stat), the sized Sharpe clears a floor, and it beats the
sizing champion's as of the session. NaN fails closed (an identity policy has no t-stat)."""

from __future__ import annotations

from typing import Any

from trademl.config import PolicyPromotionConfig
from trademl.models.gate import Decision, beats_champion, check, finite

__all__ = ["decide"]


def decide(
    challenger: dict[str, Any], champion: dict[str, Any] | None, bars: PolicyPromotionConfig
) -> Decision:
    """Judge a sizing policy by `evaluate_sizing`'s metrics."""
    c = challenger
    unsized = c.get("sharpe_unsized")
    checks = [
        check(
            "sharpe_vs_unsized",
            c.get("sharpe_sized"),
            unsized + bars.min_sharpe_margin if finite(unsized) else None,
            ">",
        ),
        check("improvement_t", c.get("improvement_t"), bars.min_improvement_t, "≥"),
        check("sharpe_sized", c.get("sharpe_sized"), bars.min_sharpe, "≥"),
    ]
    checks += beats_champion(
        "sharpe_sized", c, champion, bars.sharpe_margin_vs_champion, name="sharpe_vs_champion"
    )
    return Decision(checks)
