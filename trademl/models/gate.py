"""The promotion verdict every sleeve's gate returns: named checks, each a measured value
against a bar; every check must pass, and a missing or non-finite value fails closed.

Each sleeve states its own rules in `trademl/models/<sleeve>/promotion.py` with `check` and
`beats_champion`; the Dagster side only reads the `Decision`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckOutcome", "Decision", "beats_champion", "check", "finite"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "≥": operator.ge,
    "≤": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class CheckOutcome:
    """One bar: `value` compared with `threshold` by `op`; `reason` says it in words."""

    name: str
    passed: bool
    value: float
    threshold: float
    reason: str
    op: str = "≥"


@dataclass
class Decision:
    """The verdict and why, as MLflow tags and asset metadata want it."""

    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def promote(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def reasons(self) -> dict[str, str]:
        return {c.name: c.reason for c in self.checks}

    def failed(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """The failed bars in one line, or that every bar passed."""
        bad = self.failed()
        if not self.checks:
            return "no bar was evaluated (fail closed)"
        return "; ".join(c.reason for c in bad) if bad else "every bar passed"


def finite(x: Any) -> bool:
    """A real, finite number (bools and None are not)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def check(name: str, value: Any, threshold: Any, op: str) -> CheckOutcome:
    """One comparison; a missing or non-finite value or threshold fails closed."""
    if not finite(value) or not finite(threshold):
        missing = "value" if not finite(value) else "threshold"
        return CheckOutcome(
            name,
            False,
            float("nan"),
            float("nan"),
            f"{name}: {missing} missing or NaN (fail closed)",
            op,
        )
    v, t = float(value), float(threshold)
    passed = _OPS[op](v, t)
    verb = "passes" if passed else "fails"
    return CheckOutcome(name, passed, v, t, f"{name}={v:.4g} {verb} {op} {t:.4g}", op)


def beats_champion(
    metric: str,
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    margin: float,
    *,
    higher_is_better: bool = True,
    name: str | None = None,
) -> list[CheckOutcome]:
    """`<metric>_vs_champion` (or `name`): the challenger's metric beats the champion's (as of
    the same session) by `margin`; no champion yet → no check (the absolute bars decide)."""
    if champion is None:
        return []
    label = name or f"{metric}_vs_champion"
    champ = champion.get(metric)
    if higher_is_better:
        bar = champ + margin if finite(champ) else None
        return [check(label, challenger.get(metric), bar, ">")]
    bar = champ - margin if finite(champ) else None
    return [check(label, challenger.get(metric), bar, "<")]
