"""Quality control of daily bars, per session: GREEN, YELLOW or RED with reasons.

Rules only flag; nothing is dropped or filled. A RED session must stop downstream
assets (the Dagster check is blocking); YELLOW is a warning. Rules are one entry
each in `RULES` and see the session's rows plus a trailing window of history; the
data-realism rules live in `trademl.data.realism`.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import polars as pl

from trademl.config import QCConfig
from trademl.data import realism

PRICES = ("open", "high", "low", "close")


class Status(StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"


_RANK = {Status.GREEN: 0, Status.YELLOW: 1, Status.RED: 2}


def worst(statuses: Sequence[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.GREEN)


@dataclass(frozen=True)
class RuleResult:
    status: Status
    message: str
    value: float = 0.0


@dataclass
class SessionQC:
    session: dt.date
    results: dict[str, RuleResult] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst([r.status for r in self.results.values()])

    def reasons(self) -> list[str]:
        return [
            f"{name}: {r.message}" for name, r in self.results.items() if r.status != Status.GREEN
        ]


@dataclass
class _Ctx:
    """Bars of the window, aligned to the session grid, shared by the rules."""

    rows: pl.DataFrame  # rows dated on sessions of the window, with column `si`
    off_calendar: pl.DataFrame  # rows dated on non-sessions, with `si` of the next session
    sessions: list[dt.date]
    symbols: list[str]
    present: np.ndarray  # [T, N] bool: a bar exists
    cfg: QCConfig
    training: tuple[int, int] = (756, 5)  # (training sessions, label horizon) of the alpha


Rule = Callable[[_Ctx, list[int]], dict[int, RuleResult]]


def _examples(frame: pl.DataFrame, n: int = 5) -> str:
    syms = frame.get_column("symbol").head(n).to_list()
    more = frame.height - len(syms)
    return ", ".join(syms) + (f" (+{more} more)" if more > 0 else "")


def _per_session(ctx: _Ctx, idx: list[int], bad: pl.Expr, what: str) -> dict[int, RuleResult]:
    """RED for every session with rows matching `bad`, naming a few symbols."""
    hits = ctx.rows.filter(pl.col("si").is_in(idx) & bad)
    out = {i: RuleResult(Status.GREEN, "ok") for i in idx}
    for (si,), grp in hits.group_by("si", maintain_order=True):
        out[si] = RuleResult(
            Status.RED, f"{grp.height} rows with {what}: {_examples(grp)}", grp.height
        )
    return out


def rule_coverage(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Share of the active universe (names with a bar in the prior sessions) with a bar today."""
    look = ctx.cfg.universe_lookback
    csum = np.vstack([np.zeros((1, ctx.present.shape[1]), int), np.cumsum(ctx.present, axis=0)])
    out = {}
    for i in idx:
        today = ctx.present[i]
        active = (csum[i] - csum[max(0, i - look)]) > 0
        if not today.any():
            out[i] = RuleResult(Status.RED, "no bars at all for this session", 0.0)
            continue
        if not active.any():
            out[i] = RuleResult(Status.GREEN, "first session: universe is today's names", 1.0)
            continue
        cov = float((today & active).sum() / active.sum())
        missing = [s for s, a, p in zip(ctx.symbols, active, today, strict=True) if a and not p]
        msg = f"{cov:.1%} of {int(active.sum())} active names have a bar"
        if missing:
            msg += f"; missing {', '.join(missing[:5])}" + (
                f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            )
        status = (
            Status.RED
            if cov < ctx.cfg.coverage_red
            else Status.YELLOW
            if cov < ctx.cfg.coverage_yellow
            else Status.GREEN
        )
        out[i] = RuleResult(status, msg, cov)
    return out


def rule_prices(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    bad = pl.any_horizontal(
        [pl.col(c).is_null() | pl.col(c).is_nan() | (pl.col(c) <= 0) for c in PRICES]
    )
    return _per_session(ctx, idx, bad, "a NaN, missing or non-positive price")


def rule_ohlc(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    h, lo = pl.col("high"), pl.col("low")
    bad = (h < lo) | ~pl.col("close").is_between(lo, h) | ~pl.col("open").is_between(lo, h)
    return _per_session(
        ctx, idx, bad.fill_null(False), "high < low or open/close outside [low, high]"
    )


def rule_duplicates(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    bad = pl.struct("si", "symbol").is_duplicated()
    return _per_session(ctx, idx, bad, "a duplicate (date, symbol)")


def rule_volume(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    v = pl.col("volume")
    out = _per_session(ctx, idx, v.is_null() | v.is_nan() | (v < 0), "missing or negative volume")
    rows = ctx.rows.filter(pl.col("si").is_in(idx))
    for (si,), grp in rows.group_by("si", maintain_order=True):
        if out[si].status == Status.RED:
            continue
        zero = grp.filter(pl.col("volume") == 0)
        if zero.height:
            share = zero.height / grp.height
            status = Status.RED if share > ctx.cfg.zero_volume_red else Status.YELLOW
            out[si] = RuleResult(
                status, f"{zero.height} rows with zero volume: {_examples(zero)}", share
            )
    return out


def rule_gaps(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Names that are back today after missing sessions (within the gap lookback)."""
    t_len = ctx.present.shape[0]
    last = np.where(ctx.present, np.arange(t_len)[:, None], -1)
    last = np.maximum.accumulate(last, axis=0)
    out = {}
    for i in idx:
        prev = last[i - 1] if i > 0 else np.full(ctx.present.shape[1], -1)
        gap = i - prev - 1
        hit = ctx.present[i] & (prev >= 0) & (gap > 0) & (i - prev <= ctx.cfg.gap_lookback)
        n_today = int(ctx.present[i].sum())
        if not hit.any():
            out[i] = RuleResult(Status.GREEN, "ok")
            continue
        names = [
            f"{s} ({int(g)} missing)" for s, g, h in zip(ctx.symbols, gap, hit, strict=True) if h
        ]
        share = len(names) / max(n_today, 1)
        many = share > ctx.cfg.gap_symbols_red and len(names) >= ctx.cfg.gap_min_names_red
        status = Status.RED if many else Status.YELLOW
        more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
        out[i] = RuleResult(
            status,
            f"{len(names)} names missed sessions before today: {', '.join(names[:5])}{more}",
            share,
        )
    return out


def rule_off_calendar(ctx: _Ctx, idx: list[int]) -> dict[int, RuleResult]:
    """Rows dated on a non-session just before this session belong to no partition."""
    out = {i: RuleResult(Status.GREEN, "ok") for i in idx}
    hits = ctx.off_calendar.filter(pl.col("si").is_in(idx))
    for (si,), grp in hits.group_by("si", maintain_order=True):
        dates = sorted({str(d) for d in grp.get_column("date").to_list()})
        out[si] = RuleResult(
            Status.RED,
            f"{grp.height} rows dated on non-session days {', '.join(dates[:3])} "
            "(calendar or time-zone mismatch?)",
            grp.height,
        )
    return out


RULES: dict[str, Rule] = {
    "coverage": rule_coverage,
    "prices_valid": rule_prices,
    "ohlc_consistent": rule_ohlc,
    "unique_keys": rule_duplicates,
    "volume_valid": rule_volume,
    "history_gaps": rule_gaps,
    "on_calendar": rule_off_calendar,
    # data realism (YELLOW): valid bars that make part of the platform meaningless
    "volume_realistic": realism.rule_constant_volume,
    "open_realistic": realism.rule_open_is_previous_close,
    "range_realistic": realism.rule_ranges,
    "prices_adjusted": realism.rule_unadjusted,
    "universe_sufficient": realism.rule_universe,
}


def run_qc(
    bars: pl.DataFrame,
    sessions: Sequence[dt.date],
    targets: Sequence[dt.date],
    cfg: QCConfig,
    *,
    training: tuple[int, int] = (756, 5),
) -> list[SessionQC]:
    """QC of each target session, given bars of a window of `sessions` ending at the last target.

    `sessions` must start at least ``max(universe_lookback, gap_lookback, realism_lookback)``
    sessions before the first target for the history rules to see the full window.
    `training` is (training sessions, label horizon) of the alpha, for the universe check.
    """
    sessions = list(sessions)
    pos = {d: i for i, d in enumerate(sessions)}
    missing = [d for d in targets if d not in pos]
    if missing:
        raise ValueError(f"QC targets {missing[:3]} are not sessions of the window")
    on = pl.col("date").is_in(pl.Series(sessions, dtype=pl.Date))
    rows = bars.filter(on).with_columns(
        pl.col("date").replace_strict(pos, return_dtype=pl.Int64).alias("si")
    )
    off = bars.filter(~on & pl.col("date").is_between(sessions[0], sessions[-1]))
    off = off.with_columns(
        pl.col("date")
        .map_elements(lambda d: bisect_left(sessions, d), return_dtype=pl.Int64)
        .alias("si")
    )
    symbols = sorted(set(rows.get_column("symbol").to_list()))
    col = {s: j for j, s in enumerate(symbols)}
    present = np.zeros((len(sessions), len(symbols)), dtype=bool)
    if rows.height:
        present[
            rows.get_column("si").to_numpy(),
            np.fromiter((col[s] for s in rows.get_column("symbol").to_list()), int, rows.height),
        ] = True
    ctx = _Ctx(rows, off, sessions, symbols, present, cfg, training)
    idx = [pos[d] for d in targets]
    per_rule = {name: rule(ctx, idx) for name, rule in RULES.items()}
    return [SessionQC(sessions[i], {n: per_rule[n][i] for n in RULES}) for i in idx]


def qc_frame(report: Sequence[SessionQC]) -> pl.DataFrame:
    """Long table (session, rule, status, value, message) for metadata and storage."""
    rows = [
        (q.session, name, str(r.status), float(r.value), r.message)
        for q in report
        for name, r in q.results.items()
    ]
    return pl.DataFrame(
        rows,
        schema={
            "session": pl.Date,
            "rule": pl.String,
            "status": pl.String,
            "value": pl.Float64,
            "message": pl.String,
        },
        orient="row",
    )
