"""Promotion rules of the CPCV alpha sleeves (equities LightGBM/CatBoost, linear): absolute
bars on the nested out-of-sample paths AND a rank IC above the champion's as of the session.
Every check must pass; a missing or NaN metric fails closed."""

from __future__ import annotations

from typing import Any

from trademl.config import PromotionConfig
from trademl.models.gate import CheckOutcome, Decision, beats_champion, check, finite

__all__ = ["CheckOutcome", "Decision", "PromotionPolicy", "decide"]

#: The bars live in the settings (`equities.promotion`, `linear.promotion`); one definition.
PromotionPolicy = PromotionConfig


def decide(
    challenger: dict[str, Any], champion: dict[str, Any] | None, policy: PromotionPolicy
) -> Decision:
    """Judge a challenger's governance metrics; the first model faces the absolute bars only."""
    c = challenger
    base = c.get("baseline_rank_ic")
    checks = [
        check("path_sharpe_median", c.get("path_sharpe_median"), policy.min_path_sharpe, "≥"),
        check("max_drawdown", c.get("max_drawdown"), policy.max_drawdown, "≤"),
        check("dsr", c.get("dsr"), policy.min_dsr, "≥"),
        check("pbo", c.get("pbo"), policy.max_pbo, "≤"),
        check(
            "rank_ic_vs_baseline",
            c.get("oos_rank_ic"),
            base + policy.ic_margin_vs_baseline if finite(base) else None,
            ">",
        ),
    ]
    checks += beats_champion(
        "oos_rank_ic", c, champion, policy.ic_margin_vs_champion, name="rank_ic_vs_champion"
    )
    return Decision(checks)
