"""Promotion rules of an offline RL sizing policy, from the metrics `pipeline.judge` logged:
the doubly robust lower confidence bound on the held-out logged sessions beats the behaviour
policy's value by a margin, the replay through the environment beats the traded book (bucket
1.0) with a t-stat over the bar, the book it sizes beats the unsized book's net Sharpe in the
platform's backtest (caps, costs) on the same sessions, and the replay beats the sizing
champion's. NaN fails
closed; a random policy and the baseline itself fail (tested)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trademl.config import OfflineRLPromotionConfig
from trademl.models.gate import Decision, beats_champion, check, finite

__all__ = ["decide"]


def decide(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    bars: OfflineRLPromotionConfig,
) -> Decision:
    """Judge an offline RL policy by its OPE and replay metrics."""
    c = challenger
    base = c.get("ope_behaviour")
    checks = [
        check(
            "dr_lower_vs_behaviour",
            c.get("ope_dr_lo"),
            base + bars.margin if finite(base) else None,
            "≥",
        ),
        check("replay_improvement_t", c.get("replay_improvement_t"), bars.min_improvement_t, "≥"),
    ]
    if "book_sharpe_unsized" in c:  # the platform's backtest of the book, sized vs unsized
        unsized = c.get("book_sharpe_unsized")
        checks.append(
            check(
                "book_sharpe_vs_unsized",
                c.get("book_sharpe_sized"),
                unsized if finite(unsized) else None,
                ">",
            )
        )
    checks += beats_champion(
        "replay_policy_bps_per_session",
        c,
        champion,
        bars.margin_vs_champion,
        name="replay_vs_champion",
    )
    return Decision(checks)
