"""Named point-in-time feature definitions: a new feature is one `FeatureDef` entry.

Every definition is a polars expression evaluated on the (symbol × session) grid,
sorted by symbol then date, where a missing bar is a null row. Time-series
expressions only look backwards (`shift(k ≥ 0)`, trailing rolling windows), so a
feature for session d uses only bars dated ≤ d. `lookback` is how many sessions
of history (including d) the expression reads, which sizes the partition window.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

ANNUAL = math.sqrt(252.0)


@dataclass(frozen=True)
class FeatureDef:
    """One feature: its name, its expression and how much history it reads."""

    name: str
    expr: Callable[[], pl.Expr]
    lookback: int
    description: str


def _sym(e: pl.Expr) -> pl.Expr:
    return e.over("symbol")


def _cf() -> pl.Expr:
    return pl.col("close_ff")


def _min_obs(window: int) -> int:
    return max(2, math.ceil(0.75 * window))


def _momentum(k: int) -> FeatureDef:
    return FeatureDef(
        f"mom_{k}",
        lambda: _sym(_cf() / _cf().shift(k)) - 1.0,
        k + 1,
        f"{k}-session price momentum: close / close {k} sessions ago − 1",
    )


def _rvol(w: int) -> FeatureDef:
    return FeatureDef(
        f"rvol_{w}",
        lambda: _sym(pl.col("ret_1").rolling_std(w, min_samples=_min_obs(w))) * ANNUAL,
        w + 1,
        f"annualized std of daily log returns over {w} sessions",
    )


def _rolling_mean(col: str, w: int) -> pl.Expr:
    return _sym(pl.col(col).rolling_mean(w, min_samples=_min_obs(w)))


def _close_z(w: int) -> pl.Expr:
    mean = _sym(_cf().rolling_mean(w, min_samples=_min_obs(w)))
    std = _sym(_cf().rolling_std(w, min_samples=_min_obs(w)))
    return (pl.col("close") - mean) / std


def _bb_pos(w: int) -> pl.Expr:
    """Position inside the Bollinger bands (mean ± 2σ): 0 at the lower, 1 at the upper band."""
    mean = _sym(_cf().rolling_mean(w, min_samples=_min_obs(w)))
    std = _sym(_cf().rolling_std(w, min_samples=_min_obs(w)))
    return (pl.col("close") - (mean - 2 * std)) / (4 * std)


def _beta(w: int) -> pl.Expr:
    """Rolling OLS beta of a name's returns on the equal-weight market's, pairwise complete."""
    x = pl.col("ret_1")
    y = pl.when(x.is_not_null()).then(pl.col("mkt_ret"))
    n = _min_obs(w)
    mx = _sym(x.rolling_mean(w, min_samples=n))
    my = _sym(y.rolling_mean(w, min_samples=n))
    mxy = _sym((x * y).rolling_mean(w, min_samples=n))
    myy = _sym((y * y).rolling_mean(w, min_samples=n))
    return (mxy - mx * my) / (myy - my * my)


def _dow(fn: Callable[[pl.Expr], pl.Expr]) -> Callable[[], pl.Expr]:
    return lambda: fn(2 * math.pi * (pl.col("date").dt.weekday() - 1) / 5)


REGISTRY: tuple[FeatureDef, ...] = (
    _momentum(5),
    _momentum(20),
    _momentum(60),
    _momentum(126),
    FeatureDef(
        "mom_12_1",
        lambda: _sym(_cf().shift(21) / _cf().shift(252)) - 1.0,
        253,
        "12-1 momentum: return from 252 to 21 sessions ago (skips the last month)",
    ),
    FeatureDef("dow_sin", _dow(lambda a: a.sin()), 1, "day of week on the unit circle (sin)"),
    FeatureDef("dow_cos", _dow(lambda a: a.cos()), 1, "day of week on the unit circle (cos)"),
    FeatureDef("close_z_20", lambda: _close_z(20), 20, "z-score of close in its 20-session window"),
    _rvol(20),
    _rvol(60),
    FeatureDef(
        "adv_20", lambda: _rolling_mean("volume", 20), 20, "20-session mean volume (shares)"
    ),
    FeatureDef(
        "dollar_vol_20",
        lambda: _rolling_mean("dollar_volume", 20),
        20,
        "20-session mean dollar volume",
    ),
    FeatureDef("bb_pos_20", lambda: _bb_pos(20), 20, "price position within 20-session ±2σ bands"),
    FeatureDef("gap_1", lambda: pl.col("gap"), 2, "overnight gap: log(open / previous close)"),
    FeatureDef(
        "gap_mean_20", lambda: _rolling_mean("gap", 20), 21, "mean overnight gap, 20 sessions"
    ),
    FeatureDef(
        "gap_std_20",
        lambda: _sym(pl.col("gap").rolling_std(20, min_samples=_min_obs(20))),
        21,
        "std of overnight gaps, 20 sessions",
    ),
    FeatureDef(
        "dd_252",
        lambda: _cf() / _sym(_cf().rolling_max(252, min_samples=60)) - 1.0,
        252,
        "drawdown from the trailing 252-session high (≥ 60 sessions of history)",
    ),
    FeatureDef("beta_60", lambda: _beta(60), 61, "60-session beta to the equal-weight market"),
    FeatureDef(
        "mkt_rvol_20",
        lambda: _sym(pl.col("mkt_ret").rolling_std(20, min_samples=_min_obs(20))) * ANNUAL,
        21,
        "market regime: annualized 20-session realized vol of the equal-weight market",
    ),
)

BY_NAME: dict[str, FeatureDef] = {f.name: f for f in REGISTRY}
XS_PREFIXES = ("xs_rank_", "xs_z_")


def base_feature_names() -> list[str]:
    """Time-series features in registry order."""
    return [f.name for f in REGISTRY]


def feature_names(cross_sectional: list[str]) -> list[str]:
    """The ordered output columns: base features, then xs ranks, then xs z-scores."""
    unknown = [n for n in cross_sectional if n not in BY_NAME]
    if unknown:
        raise ValueError(
            f"features.cross_sectional names unknown features {unknown}; "
            f"known: {', '.join(BY_NAME)}"
        )
    return (
        base_feature_names()
        + [f"xs_rank_{n}" for n in cross_sectional]
        + [f"xs_z_{n}" for n in cross_sectional]
    )


def required_history(ffill_limit: int) -> int:
    """Sessions of bars (including d) that make features at d exact, ffill reach included."""
    return max(f.lookback for f in REGISTRY) + ffill_limit + 1
