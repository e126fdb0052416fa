"""Data-realism checks: bars that are valid but make part of the platform meaningless.

Each rule flags a session YELLOW with a plain reason (nothing here makes a computation
wrong, only meaningless): constant volume (ADV, impact, participation and costs mean
nothing), opens equal to the previous close (a next-open fill is the decision close, so the
execution lag has no effect), degenerate or fixed-width high/low ranges, split-sized jumps
(prices look unadjusted), and a universe whose noise floor over the training window is
above any plausible signal (the promotion bars are out of reach).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from trademl.data.quality import RuleResult, _Ctx

#: Price ratios of common splits and reverse splits. A split happens overnight, so a jump is
#: split-sized when both the open and the close are within SPLIT_TOLERANCE of the same ratio
#: times the previous close (a real crash of that size rarely opens exactly there too).
SPLITS = {
    1 / 10: "10:1 split",
    1 / 5: "5:1 split",
    1 / 4: "4:1 split",
    1 / 3: "3:1 split",
    1 / 2: "2:1 split",
    2 / 3: "3:2 split",
    2.0: "1:2 reverse split",
    3.0: "1:3 reverse split",
    4.0: "1:4 reverse split",
    5.0: "1:5 reverse split",
    10.0: "1:10 reverse split",
}
SPLIT_TOLERANCE = 0.03


def _result(status: str, message: str, value: float = 0.0) -> RuleResult:
    from trademl.data.quality import RuleResult, Status

    return RuleResult(Status(status), message, value)


def _ok() -> RuleResult:
    return _result("GREEN", "ok")


def _rows(ctx: _Ctx) -> pl.DataFrame:
    """The window's rows with each name's previous close and its volume range over the last
    `realism_lookback` bars, computed once per QC run (sorted by symbol, session)."""
    cached = getattr(ctx, "_realism_rows", None)
    if cached is not None:
        return cached
    look = ctx.cfg.realism_lookback
    v = pl.col("volume")
    rows = ctx.rows.sort("symbol", "si").with_columns(
        pl.col("close").shift(1).over("symbol").alias("prev_close"),
        v.rolling_max(look, min_samples=1).over("symbol").alias("v_max"),
        v.rolling_min(look, min_samples=1).over("symbol").alias("v_min"),
        pl.col("si").rolling_min(look, min_samples=1).over("symbol").alias("si_first"),
        pl.int_range(pl.len()).over("symbol").alias("k"),
    )
    object.__setattr__(ctx, "_realism_rows", rows)
    return rows


def _per_session(ctx: _Ctx, idx: list[int], agg: list[pl.Expr]) -> dict[int, dict]:
    """One aggregate row per target session (sessions without rows are absent)."""
    grouped = _rows(ctx).filter(pl.col("si").is_in(idx)).group_by("si").agg(agg)
    return {r["si"]: r for r in grouped.iter_rows(named=True)}


def _share_rule(
    ctx: _Ctx, idx: list[int], stats: dict[int, dict], message: Callable[[int, int], str]
) -> dict[int, RuleResult]:
    """YELLOW where the `hit` names are at least `realism_share` of the `n` judged ones."""
    out = {}
    for i in idx:
        row = stats.get(i, {"n": 0, "hit": 0})
        share = row["hit"] / row["n"] if row["n"] else 0.0
        if row["n"] and share >= ctx.cfg.realism_share:
            out[i] = _result("YELLOW", message(row["hit"], row["n"]), share)
        else:
            out[i] = _ok()
    return out


def rule_constant_volume(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Volume that never changes over the trailing window, for (nearly) every name."""
    look = ctx.cfg.realism_lookback
    # a name is judged with ≥ 5 of its bars inside the window ending at the session
    judged = (pl.col("k") >= 4) & (pl.col("si") - pl.col("si_first") < look)
    stats = _per_session(
        ctx,
        idx,
        [
            judged.sum().alias("n"),
            (judged & (pl.col("v_max") == pl.col("v_min"))).sum().alias("hit"),
        ],
    )
    return _share_rule(
        ctx,
        idx,
        stats,
        lambda hit, n: (
            f"volume is constant over the last {look} sessions for {hit} of {n} "
            "names: ADV, market impact, participation and the costs built on them are meaningless"
        ),
    )


def rule_open_is_previous_close(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Opens equal to the previous close: a next-open fill is the decision's close price."""
    has_prev = pl.col("prev_close").is_not_null()
    same = has_prev & ((pl.col("open") / pl.col("prev_close") - 1.0).abs() < 1e-9)
    stats = _per_session(ctx, idx, [has_prev.sum().alias("n"), same.sum().alias("hit")])
    return _share_rule(
        ctx,
        idx,
        stats,
        lambda hit, n: (
            f"the open equals the previous close for {hit} of {n} names: a fill at "
            "the next open is the decision's close, so the execution lag (and any overnight gap) "
            "has no effect"
        ),
    )


def rule_ranges(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """High == low for (nearly) every name, or the same relative range for all of them."""
    width = ((pl.col("high") - pl.col("low")) / pl.col("close")).filter(
        (pl.col("close") > 0) & ((pl.col("high") - pl.col("low")) / pl.col("close")).is_finite()
    )
    stats = _per_session(
        ctx,
        idx,
        [
            width.len().alias("n"),
            (width <= 0).mean().alias("flat"),
            width.mean().alias("mean"),
            width.std(ddof=0).alias("std"),
        ],
    )
    out = {}
    for i in idx:
        row = stats.get(i)
        if row is None or row["n"] < 3:
            out[i] = _ok()
            continue
        mean = row["mean"] or 0.0
        spread = row["std"] / mean if mean > 0 else math.inf
        if row["flat"] >= ctx.cfg.realism_share:
            out[i] = _result(
                "YELLOW",
                f"high equals low for {row['flat']:.0%} of names: no intraday range "
                "(volatility from ranges and barrier touches are meaningless)",
                row["flat"],
            )
        elif spread < 1e-3:
            out[i] = _result(
                "YELLOW",
                f"every name's high-low range is the same ±{mean / 2:.2%} of its close: the "
                "ranges look generated, not traded",
                mean,
            )
        else:
            out[i] = _ok()
    return out


def rule_unadjusted(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Close-to-close jumps the size of a split: prices that look unadjusted."""
    ratio = pl.col("close") / pl.col("prev_close")
    jumps = (
        _rows(ctx)
        .filter(pl.col("si").is_in(idx) & ((ratio <= 0.7) | (ratio >= 1.9)))
        .select(
            "si", "symbol", ratio.alias("r"), (pl.col("open") / pl.col("prev_close")).alias("o")
        )
    )
    hits: dict[int, list[str]] = {}
    for si, sym, r, o in jumps.iter_rows():
        if r is None or o is None or not (math.isfinite(r) and r > 0 and o > 0):
            continue
        split = min(SPLITS, key=lambda s, r=r: abs(math.log(r / s)))
        if max(abs(r / split - 1.0), abs(o / split - 1.0)) <= SPLIT_TOLERANCE:
            hits.setdefault(si, []).append(f"{sym} ×{r:.2f} (a {SPLITS[split]}?)")
    out = {}
    for i in idx:
        found = hits.get(i, [])
        if found:
            more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
            out[i] = _result(
                "YELLOW",
                f"{len(found)} close-to-close moves the size of a split: {', '.join(found[:3])}"
                f"{more}: prices look unadjusted — feed split- and dividend-adjusted bars",
                len(found),
            )
        else:
            out[i] = _ok()
    return out


def rule_universe(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """A universe whose rank-IC noise floor over the training window exceeds a plausible IC.

    One session's rank IC over n names has a standard error of 1/√(n−1); the mean over a
    training window of T sessions with h-session labels averages about T/h independent
    sessions. A rank IC below twice that standard error cannot be told from noise.
    """
    t, h = ctx.training
    out = {}
    for i in idx:
        n = int(ctx.present[i].sum())
        if n == 0:  # no bars at all: the coverage rule says so (RED)
            out[i] = _ok()
            continue
        if n < 5:
            out[i] = _result(
                "YELLOW",
                f"{n} names: a quintile long-short book holds no name per leg, so no "
                "model's path Sharpe can be measured and no promotion bar can pass",
                n,
            )
            continue
        se = 1.0 / math.sqrt((n - 1) * max(t / h, 1.0))
        if 2 * se > ctx.cfg.plausible_rank_ic:
            out[i] = _result(
                "YELLOW",
                f"{n} names: one session's rank IC has a standard error of "
                f"{1 / math.sqrt(n - 1):.3f}; over the {t}-session training window ({t // h} "
                f"independent {h}-session labels) ±{se:.3f}, so a rank IC below {2 * se:.3f} "
                f"cannot be told from noise — above a plausible {ctx.cfg.plausible_rank_ic:g}: "
                "the promotion bars are out of reach; add names or history",
                2 * se,
            )
        else:
            out[i] = _ok()
    return out
