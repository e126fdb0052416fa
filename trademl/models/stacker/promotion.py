"""Promotion rules of the stacker: its out-of-sample record must beat the best single sleeve
on the same rows and paths (median-path rank IC, by a margin), with PBO and DSR no worse than
that sleeve's — or clearing the absolute bars every sleeve clears (`max_pbo`, `min_dsr`) —
and beat the stacker champion as of the session. Every check must pass; a missing or NaN
metric fails closed."""

from __future__ import annotations

from typing import Any

from trademl.config import StackerPromotionConfig
from trademl.models.gate import Decision, beats_champion, check, finite

__all__ = ["decide"]


def decide(
    challenger: dict[str, Any], champion: dict[str, Any] | None, bars: StackerPromotionConfig
) -> Decision:
    """Judge a stacker's metrics (`train_stacker`'s) against its bars and its champion's."""
    c = challenger
    best, best_pbo, best_dsr = (
        c.get("best_sleeve_rank_ic"),
        c.get("best_sleeve_pbo"),
        c.get("best_sleeve_dsr"),
    )
    checks = [
        check(
            "rank_ic_vs_best_sleeve",
            c.get("oos_rank_ic"),
            best + bars.ic_margin_vs_best_sleeve if finite(best) else None,
            ">",
        ),
        check(
            "pbo_vs_best_sleeve",
            c.get("pbo"),
            max(best_pbo, bars.max_pbo) if finite(best_pbo) else bars.max_pbo,
            "≤",
        ),
        check(
            "dsr_vs_best_sleeve",
            c.get("dsr"),
            min(best_dsr, bars.min_dsr) if finite(best_dsr) else bars.min_dsr,
            "≥",
        ),
    ]
    checks += beats_champion(
        "oos_rank_ic", c, champion, bars.ic_margin_vs_champion, name="rank_ic_vs_champion"
    )
    return Decision(checks)
