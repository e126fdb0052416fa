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
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from trademl.data.quality import RuleResult, _Ctx

#: Close-to-close ratios of common splits and reverse splits (a jump within 3% of one).
SPLITS = {
    1 / 10: "10:1 split",
    1 / 5: "5:1 split",
    1 / 4: "4:1 split",
    1 / 3: "3:1 split",
    1 / 2: "2:1 split",
    2 / 3: "3:2 split",
    3 / 2: "2:3 reverse split",
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


def _today(ctx: _Ctx, i: int) -> pl.DataFrame:
    return ctx.rows.filter(pl.col("si") == i)


def _previous(ctx: _Ctx, i: int) -> pl.DataFrame:
    """Each name's latest bar before session i (within the window)."""
    return (
        ctx.rows.filter(pl.col("si") < i)
        .sort("si")
        .group_by("symbol", maintain_order=True)
        .last()
        .select("symbol", pl.col("close").alias("prev_close"))
    )


def rule_constant_volume(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Volume that never changes over the trailing window, for (nearly) every name."""
    look = ctx.cfg.realism_lookback
    out = {}
    for i in idx:
        window = ctx.rows.filter(pl.col("si").is_between(i - look + 1, i))
        per = window.group_by("symbol").agg(
            pl.len().alias("n"), (pl.col("volume").max() == pl.col("volume").min()).alias("flat")
        )
        judged = per.filter(pl.col("n") >= 5)
        flat = int(judged.get_column("flat").sum()) if judged.height else 0
        share = flat / judged.height if judged.height else 0.0
        if judged.height and share >= ctx.cfg.realism_share:
            out[i] = _result(
                "YELLOW",
                f"volume is constant over the last {look} sessions for {flat} of "
                f"{judged.height} names: ADV, market impact, participation and the costs "
                "built on them are meaningless",
                share,
            )
        else:
            out[i] = _ok()
    return out


def rule_open_is_previous_close(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Opens equal to the previous close: a next-open fill is the decision's close price."""
    out = {}
    for i in idx:
        j = _today(ctx, i).join(_previous(ctx, i), on="symbol", how="inner")
        if j.height == 0:
            out[i] = _ok()
            continue
        same = j.filter((pl.col("open") / pl.col("prev_close") - 1.0).abs() < 1e-9).height
        share = same / j.height
        if share >= ctx.cfg.realism_share:
            out[i] = _result(
                "YELLOW",
                f"the open equals the previous close for {same} of {j.height} names: a fill "
                "at the next open is the decision's close, so the execution lag (and any "
                "overnight gap) has no effect",
                share,
            )
        else:
            out[i] = _ok()
    return out


def rule_ranges(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """High == low for (nearly) every name, or the same relative range for all of them."""
    out = {}
    for i in idx:
        day = _today(ctx, i).filter(pl.col("close") > 0)
        if day.height < 3:
            out[i] = _ok()
            continue
        width = (
            (day.get_column("high") - day.get_column("low")) / day.get_column("close")
        ).to_numpy()
        width = width[np.isfinite(width)]
        flat = float((width <= 0).mean()) if width.size else 0.0
        mean = float(width.mean()) if width.size else 0.0
        spread = float(width.std() / mean) if mean > 0 else math.inf
        if flat >= ctx.cfg.realism_share:
            out[i] = _result(
                "YELLOW",
                f"high equals low for {flat:.0%} of names: no intraday range (volatility from "
                "ranges and barrier touches are meaningless)",
                flat,
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
    out = {}
    for i in idx:
        j = _today(ctx, i).join(_previous(ctx, i), on="symbol", how="inner")
        ratio = (j.get_column("close") / j.get_column("prev_close")).to_numpy()
        hits = []
        for sym, r in zip(j.get_column("symbol").to_list(), ratio, strict=True):
            if not (np.isfinite(r) and r > 0) or 0.6 < r < 1.45:
                continue
            split = min(SPLITS, key=lambda s, r=r: abs(math.log(r / s)))
            if abs(r / split - 1.0) <= SPLIT_TOLERANCE:
                hits.append(f"{sym} ×{r:.2f} (a {SPLITS[split]}?)")
        if hits:
            more = f" (+{len(hits) - 3} more)" if len(hits) > 3 else ""
            out[i] = _result(
                "YELLOW",
                f"{len(hits)} close-to-close moves the size of a split: {', '.join(hits[:3])}"
                f"{more}: prices look unadjusted — feed split- and dividend-adjusted bars",
                len(hits),
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
