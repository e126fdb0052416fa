"""Promotion rules of the forecasts sleeve: the blend's OOS rank IC on the realized "rotten
apple" signals clears `min_oos_rank_ic` with a t-stat ≥ `min_oos_rank_ic_t`, AND beats the
forecaster champion's as of the session by `ic_margin_vs_champion`. NaN fails closed."""

from __future__ import annotations

from typing import Any

from trademl.config import ForecastPromotionConfig
from trademl.models.gate import Decision, beats_champion, check

__all__ = ["decide"]


def decide(
    challenger: dict[str, Any], champion: dict[str, Any] | None, bars: ForecastPromotionConfig
) -> Decision:
    """Judge a forecaster by the quality of its realized OOS signals."""
    c = challenger
    checks = [
        check("oos_rank_ic", c.get("oos_rank_ic"), bars.min_oos_rank_ic, "≥"),
        check("rank_ic_t_stat", c.get("rank_ic_t_stat"), bars.min_oos_rank_ic_t, "≥"),
    ]
    checks += beats_champion(
        "oos_rank_ic", c, champion, bars.ic_margin_vs_champion, name="rank_ic_vs_champion"
    )
    return Decision(checks)
