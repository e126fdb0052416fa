"""Named point-in-time feature definitions: a new feature is one `FeatureDef` entry.

Every definition is a polars expression evaluated on the (symbol × session) grid,
sorted by symbol then date, where a missing bar is a null row. Its columns: `symbol`
(sorted integer codes), `date`, `t` (the session's index in the grid), `has_bar`,
`close`, `volume`, `close_ff`, `ret_1`, `gap`, `dollar_volume` and `mkt_ret`.
Time-series expressions only look backwards (`_lag(e, k ≥ 0)`, trailing rolling windows
under `_sym`), so a feature for session d uses only bars dated ≤ d. `lookback` is how
many sessions of history (including d) the expression reads, which sizes the partition
window. A `scope="session"` feature reads only per-session columns (`date`, `t`,
`mkt_ret`): it is evaluated once on the session frame and broadcast to every symbol.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import polars as pl

ANNUAL = math.sqrt(252.0)
WINDOW_PREFIX = "__window_"
_HOISTED: contextvars.ContextVar[list[pl.Expr] | None] = contextvars.ContextVar(
    "hoisted_windows", default=None
)


@dataclass(frozen=True)
class FeatureDef:
    """One feature: its name, its expression, how much history it reads, and its scope:
    `symbol` (evaluated on the grid) or `session` (once per session, the same for all)."""

    name: str
    expr: Callable[[], pl.Expr]
    lookback: int
    description: str
    scope: Literal["symbol", "session"] = "symbol"


def _sym(e: pl.Expr) -> pl.Expr:
    """A window (rolling) expression evaluated per symbol; keep only the window inside.

    Inside `hoisted_windows()` the window is recorded once (equal windows share an entry)
    and stands for a column the builder computes, all windows in one pass.
    """
    table = _HOISTED.get()
    if table is None:
        return e.over("symbol")
    i = next((i for i, w in enumerate(table) if w.meta.eq(e)), None)
    if i is None:
        table.append(e)
        i = len(table) - 1
    return pl.col(f"{WINDOW_PREFIX}{i}")


@contextlib.contextmanager
def hoisted_windows() -> Iterator[list[pl.Expr]]:
    """While open, `FeatureDef.expr()` refers to `__window_<i>` columns for its per-symbol
    windows; the yielded list holds window i's expression (to evaluate `over("symbol")`)."""
    table: list[pl.Expr] = []
    token = _HOISTED.set(table)
    try:
        yield table
    finally:
        _HOISTED.reset(token)


def _lag(e: pl.Expr, k: int) -> pl.Expr:
    """`e` k sessions earlier within the symbol: a flat shift, null in each symbol's first k.

    Exact without a group-by because every symbol holds one row per session (same `t`s).
    """
    return pl.when(pl.col("t") >= k).then(e.shift(k))


def _cf() -> pl.Expr:
    return pl.col("close_ff")


def _min_obs(window: int) -> int:
    return max(2, math.ceil(0.75 * window))


def _momentum(k: int) -> FeatureDef:
    return FeatureDef(
        f"mom_{k}",
        lambda: _cf() / _lag(_cf(), k) - 1.0,
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
        lambda: _lag(_cf(), 21) / _lag(_cf(), 252) - 1.0,
        253,
        "12-1 momentum: return from 252 to 21 sessions ago (skips the last month)",
    ),
    FeatureDef(
        "dow_sin",
        _dow(lambda a: a.sin()),
        1,
        "day of week on the unit circle (sin)",
        scope="session",
    ),
    FeatureDef(
        "dow_cos",
        _dow(lambda a: a.cos()),
        1,
        "day of week on the unit circle (cos)",
        scope="session",
    ),
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
        lambda: pl.col("mkt_ret").rolling_std(20, min_samples=_min_obs(20)) * ANNUAL,
        21,
        "market regime: annualized 20-session realized vol of the equal-weight market",
        scope="session",
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
