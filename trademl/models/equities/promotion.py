"""Champion/challenger promotion rules: every check must pass; missing or NaN fails closed."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trademl.config import PromotionConfig

_OPS: dict[str, Callable[[float, float], bool]] = {
    "≥": operator.ge,
    "≤": operator.le,
    ">": operator.gt,
}


#: The bars live in the settings (`equities.promotion`); one definition for both.
PromotionPolicy = PromotionConfig


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    value: float
    threshold: float
    reason: str


@dataclass
class Decision:
    """The verdict and why, as MLflow tags and asset metadata want it."""

    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def promote(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def reasons(self) -> dict[str, str]:
        return {c.name: c.reason for c in self.checks}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def _check(name: str, value: Any, threshold: Any, op: str) -> CheckOutcome:
    """One comparison; a missing or non-finite value or threshold fails closed."""
    if not _finite(value) or not _finite(threshold):
        missing = "value" if not _finite(value) else "threshold"
        return CheckOutcome(
            name,
            False,
            float("nan"),
            float("nan"),
            f"{name}: {missing} missing or NaN (fail closed)",
        )
    v, t = float(value), float(threshold)
    passed = _OPS[op](v, t)
    verb = "passes" if passed else "fails"
    return CheckOutcome(name, passed, v, t, f"{name}={v:.4g} {verb} {op} {t:.4g}")


def decide(
    challenger: dict[str, Any], champion: dict[str, Any] | None, policy: PromotionPolicy
) -> Decision:
    """Judge a challenger's governance metrics; the first model faces the absolute bars only."""
    c = challenger
    base = c.get("baseline_rank_ic")
    checks = [
        _check("path_sharpe_median", c.get("path_sharpe_median"), policy.min_path_sharpe, "≥"),
        _check("max_drawdown", c.get("max_drawdown"), policy.max_drawdown, "≤"),
        _check("dsr", c.get("dsr"), policy.min_dsr, "≥"),
        _check("pbo", c.get("pbo"), policy.max_pbo, "≤"),
        _check(
            "rank_ic_vs_baseline",
            c.get("oos_rank_ic"),
            base + policy.ic_margin_vs_baseline if _finite(base) else None,
            ">",
        ),
    ]
    if champion is not None:
        champ = champion.get("oos_rank_ic")
        checks.append(
            _check(
                "rank_ic_vs_champion",
                c.get("oos_rank_ic"),
                champ + policy.ic_margin_vs_champion if _finite(champ) else None,
                ">",
            )
        )
    return Decision(checks)
