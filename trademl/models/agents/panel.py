"""The agents' weekly panel from the lake's bars: the `top_n` most liquid names as of the
window start, and per week end t (an ISO week's last session) their 20-session return and
daily vol known at t's close, and the simple return of holding them to the next week end.

The forecasts come from outside (`forecasts`, one (T, N) array) because which model made them
is the honesty rule: the platform's agents read, for a week of year y, the forecaster's
snapshot of year y − 1 (`trademl_assets.agents`), never one that saw the week.

A name without a close at a session carries its last close (a missing bar is a flat return);
a name with no close yet at a week end has zero return and vol that week.
"""

from __future__ import annotations

import datetime as dt
import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from trademl.models.agents.env import WeeklyPanel
from trademl.models.forecasts.weekly import WeeklySamples

__all__ = [
    "MOMENTUM_SESSIONS",
    "liquid_names",
    "panel_weeks",
    "snapshot_forecasts",
    "weekly_panel",
]

#: Sessions of the state's recent return and daily vol.
MOMENTUM_SESSIONS = 20


def liquid_names(bars: pl.DataFrame, start: dt.date, top_n: int, sessions: int) -> list[str]:
    """The `top_n` names of highest mean dollar volume (close × volume) over their last
    `sessions` bars dated ≤ `start` (known at its close), ties by name; sorted by name."""
    if top_n < 1:
        raise ValueError(f"liquid names: top_n must be ≥ 1, got {top_n}")
    ranked = (
        bars.filter(pl.col("date") <= start)
        .sort("date")
        .group_by("symbol")
        .agg((pl.col("close") * pl.col("volume")).tail(sessions).mean().alias("dollar_volume"))
        .drop_nulls("dollar_volume")
        .sort(["dollar_volume", "symbol"], descending=[True, False])
        .head(top_n)
    )
    if ranked.height < top_n:
        raise ValueError(
            f"liquid names: {ranked.height} names have bars with volume by {start}, "
            f"{top_n} were asked for; lower agents.top_n or add names"
        )
    return sorted(ranked.get_column("symbol").to_list())


def _week_end_positions(days: Sequence[dt.date]) -> np.ndarray:
    iso = np.array([d.isocalendar()[:2] for d in days]).reshape(-1, 2)
    last = np.ones(len(days), dtype=bool)
    if len(days) > 1:
        last[:-1] = (iso[1:] != iso[:-1]).any(axis=1)
    return np.flatnonzero(last)


def panel_weeks(
    days: Sequence[dt.date], first: dt.date, open_end: bool = False
) -> list[tuple[int, int | None]]:
    """(week end, next week end) positions in `days` of every week end ≥ `first` that has a
    next week end in `days` — and, with `open_end`, the last session as a final week end
    whose next one is not known yet (None)."""
    ends = [int(p) for p in _week_end_positions(days)]
    if open_end and days and days[-1] >= first:
        if not ends or ends[-1] != len(days) - 1:
            ends.append(len(days) - 1)
        ends.append(-1)  # a sentinel: the last week end has no next one
    pairs = [(p, q) for p, q in itertools.pairwise(ends) if p >= 0 and days[p] >= first]
    return [(p, q if q >= 0 else None) for p, q in pairs]


def _closes(bars: pl.DataFrame, days: list[dt.date], names: Sequence[str]) -> np.ndarray:
    """(sessions × names) closes, each carried forward over missing bars (NaN before the
    first)."""
    wide = (
        bars.filter(pl.col("symbol").is_in(list(names)))
        .pivot(on="symbol", index="date", values="close", aggregate_function="first")
        .join(pl.DataFrame({"date": days}, schema={"date": pl.Date}), on="date", how="right")
        .sort("date")
    )
    out = np.full((len(days), len(names)), np.nan)
    for j, name in enumerate(names):
        if name in wide.columns:
            out[:, j] = wide.get_column(name).fill_null(strategy="forward").to_numpy()
    return out


def weekly_panel(
    bars: pl.DataFrame,
    days: Sequence[dt.date],
    names: Sequence[str],
    first: dt.date,
    forecasts: np.ndarray,
    open_end: bool = False,
) -> WeeklyPanel:
    """The panel of `names` over the week ends ≥ `first` of the sessions `days` (which start
    early enough for the state's lookback), with `forecasts` (weeks × names, in the order of
    `panel_weeks(days, first, open_end)`); an open last week has next return 0 (unknown)."""
    days = list(days)
    weeks = panel_weeks(days, first, open_end)
    if forecasts.shape != (len(weeks), len(names)):
        raise ValueError(
            f"weekly panel: forecasts are {forecasts.shape}, expected "
            f"({len(weeks)} weeks, {len(names)} names)"
        )
    close = _closes(bars, days, names)
    with np.errstate(divide="ignore", invalid="ignore"):
        logret = np.diff(np.log(close), axis=0, prepend=np.nan)
    ret4, vol, nxt = (np.zeros((len(weeks), len(names))) for _ in range(3))
    for i, (p, q) in enumerate(weeks):
        back = max(p - MOMENTUM_SESSIONS, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ret4[i] = close[p] / close[back] - 1.0
            nxt[i] = close[q] / close[p] - 1.0 if q is not None else 0.0
        recent = logret[back + 1 : p + 1]
        with warnings.catch_warnings():  # a name without returns yet: vol 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(recent, axis=0)
        vol[i] = np.where(np.isfinite(recent).sum(axis=0) > 1, sd, 0.0)
    clean = [np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0) for a in (ret4, vol, nxt)]
    return WeeklyPanel(
        forecast=np.nan_to_num(np.asarray(forecasts, dtype=np.float64)),
        ret4=clean[0],
        vol=clean[1],
        next_return=clean[2],
        weeks=np.array([days[p] for p, _ in weeks], dtype="datetime64[D]"),
        symbols=tuple(names),
    )


def snapshot_forecasts(
    samples: WeeklySamples,
    weeks: Sequence[dt.date],
    names: Sequence[str],
    predictors: Mapping[int, Callable[[np.ndarray], np.ndarray]],
) -> np.ndarray:
    """(weeks × names) forecasts: a week of year y is predicted by `predictors[y − 1]` (the
    snapshot of the previous year end); a name without a sample that week gets 0."""
    out = np.zeros((len(weeks), len(names)))
    week_at = {np.datetime64(w, "D"): i for i, w in enumerate(weeks)}
    name_at = {n: j for j, n in enumerate(names)}
    dates = samples.date.astype("datetime64[D]")
    keep = np.array(
        [d in week_at and s in name_at for d, s in zip(dates, samples.symbol, strict=True)],
        dtype=bool,
    )
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    for year in np.unique(years[keep]):
        if int(year) - 1 not in predictors:
            raise ValueError(
                f"snapshot forecasts: weeks of {year} need the snapshot of {year - 1}, which "
                f"is not among {sorted(predictors)}"
            )
        sel = np.flatnonzero(keep & (years == year))
        pred = np.asarray(predictors[int(year) - 1](samples.x[sel]), dtype=np.float64)
        for k, value in zip(sel, pred, strict=True):
            out[week_at[dates[k]], name_at[samples.symbol[k]]] = value
    return out
