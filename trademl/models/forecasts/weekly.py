"""Weekly-return samples for the sequence forecasters (LSTM, PatchTST): each name's last
`seq_len` sessions of its channels at a week's last session, and the log return of the
`horizon` sessions after.

A sample decided at session d (its week's last session) has the input channels over sessions
d−seq_len+1..d and the target Σ r_{d+1..d+horizon}, r_s = log(close_s / close_{s−1}). The
target is known at the close of d + horizon, so a model as of session T trains only on samples
whose target ended by T (`known` ≤ T): appending later bars never changes them (point in time).
A name missing a value in either window has no sample that week.

Channels: from the bars — ``ret`` (log close-to-close return), ``gap`` (log open over the
previous close), ``range`` (log high over low), ``volume`` (log change of volume) — and any
extra channel a files source supplies in long format: a table with columns ``date``,
``symbol``, ``channel`` (its name, e.g. ``sentiment``, ``pe_ratio``) and ``value``, the value
known at that session's close. A channel asked for and absent is an error naming it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["BAR_CHANNELS", "WeeklySamples", "read_channels", "weekly_samples"]

#: The channels computed from the bars, and the columns each needs.
BAR_CHANNELS: dict[str, tuple[str, ...]] = {
    "ret": ("close",),
    "gap": ("open", "close"),
    "range": ("high", "low"),
    "volume": ("volume",),
}


@dataclass(frozen=True)
class WeeklySamples:
    """Sequences and targets, in decision-date order (then symbol).

    x : (N, seq_len, C) float32 channels; y : (N,) float64 forward `horizon`-session
    log return; date : (N,) decision sessions; known : (N,) sessions the target is known at;
    symbol : (N,) names.
    """

    x: np.ndarray
    y: np.ndarray
    date: np.ndarray
    known: np.ndarray
    symbol: np.ndarray

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: np.ndarray) -> WeeklySamples:
        return WeeklySamples(
            self.x[idx], self.y[idx], self.date[idx], self.known[idx], self.symbol[idx]
        )


def _week_ends(sessions: Sequence[dt.date]) -> np.ndarray:
    """Positions of each ISO week's last session."""
    weeks = np.array([d.isocalendar()[:2] for d in sessions]).reshape(-1, 2)
    last = np.ones(len(sessions), dtype=bool)
    if len(sessions) > 1:
        last[:-1] = (weeks[1:] != weeks[:-1]).any(axis=1)
    return np.flatnonzero(last)


def weekly_samples(
    bars: pl.DataFrame,
    sessions: Sequence[dt.date],
    *,
    seq_len: int,
    horizon: int,
    as_of: dt.date | None = None,
    channels: Sequence[str] = ("ret",),
    extra: pl.DataFrame | None = None,
    with_target: bool = True,
) -> WeeklySamples:
    """Samples of every name at every week end whose windows fit inside `sessions`.

    Parameters
    ----------
    bars : columns date, symbol, close (and open, high, low, volume for those channels).
    sessions : the exchange sessions the bars span, ascending (the calendar, so a missing
        bar is a gap, not a shorter week).
    seq_len, horizon : input length and target horizon in sessions.
    as_of : keep only samples whose target is known by then (None: every one).
    channels : the input channels, in order (module docstring).
    extra : the long-format extra channels (date, symbol, channel, value).
    with_target : False also keeps the week ends whose target is not (yet) in `sessions`,
        with y NaN — what forecasting the latest weeks needs; training keeps the default.
    """
    needed = {"close"} | {c for ch in channels for c in BAR_CHANNELS.get(ch, ())}
    for col in ("date", "symbol", *sorted(needed)):
        if col not in bars.columns:
            raise ValueError(f"weekly samples: bars lack the column {col!r}")
    have = set() if extra is None else set(extra.get_column("channel").unique().to_list())
    for ch in channels:
        if ch not in BAR_CHANNELS and ch not in have:
            raise ValueError(
                f"weekly samples: channel {ch!r} is neither a bar channel "
                f"({', '.join(BAR_CHANNELS)}) nor in the extra channels ({sorted(have) or 'none'})"
            )
    days = list(sessions)
    close, names = _wide(bars, "close", days, None)
    empty = WeeklySamples(
        np.zeros((0, seq_len, len(channels)), np.float32),
        np.zeros(0),
        np.zeros(0, "datetime64[D]"),
        np.zeros(0, "datetime64[D]"),
        np.zeros(0, dtype=object),
    )
    if not names.size or len(days) < seq_len + horizon + 1:
        return empty
    r = _log_change(close, close)
    inputs = np.stack([_channel(ch, bars, extra, days, names, close, r) for ch in channels], -1)
    day_arr = np.array(days, dtype="datetime64[D]")
    xs, ys, dates, known, syms = [], [], [], [], []
    for t in _week_ends(days):
        known_at = t + horizon < len(days)
        if t < seq_len or (with_target and not known_at):
            continue
        if with_target and as_of is not None and days[t + horizon] > as_of:
            continue
        window = inputs[t - seq_len + 1 : t + 1]  # (seq_len, names, C)
        ok = np.isfinite(window).all(axis=(0, 2))
        if known_at:
            fwd = r[t + 1 : t + horizon + 1].sum(axis=0)
            if with_target:
                ok &= np.isfinite(r[t + 1 : t + horizon + 1]).all(axis=0)
        else:
            fwd = np.full(len(names), np.nan)
        if not ok.any():
            continue
        xs.append(window[:, ok, :].transpose(1, 0, 2).astype(np.float32))
        ys.append(fwd[ok])
        dates.append(np.full(ok.sum(), day_arr[t]))
        when = day_arr[t + horizon] if known_at else np.datetime64("NaT", "D")
        known.append(np.full(ok.sum(), when))
        syms.append(names[ok])
    if not xs:
        return empty
    return WeeklySamples(
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(dates),
        np.concatenate(known),
        np.concatenate(syms),
    )


CHANNEL_COLUMNS = ("date", "symbol", "channel", "value")


def read_channels(
    path: str | None, channels: Sequence[str], start: dt.date, end: dt.date
) -> pl.DataFrame | None:
    """The extra channels among `channels` from the long-format file at `path` (parquet or
    CSV), rows `start`…`end`; None when every channel comes from the bars."""
    wanted = [c for c in channels if c not in BAR_CHANNELS]
    if not wanted:
        return None
    if not path:
        raise ValueError(
            f"channels {wanted} are not bar channels and data.channels_path is not set; point "
            "it at a parquet or CSV file with columns date, symbol, channel, value"
        )
    if not Path(path).is_file():
        raise ValueError(f"data.channels_path {path}: no such file")
    frame = (
        pl.read_csv(path, try_parse_dates=True) if path.endswith(".csv") else pl.read_parquet(path)
    )
    absent = [c for c in CHANNEL_COLUMNS if c not in frame.columns]
    if absent:
        raise ValueError(
            f"{path}: missing columns {absent}; expected long format {list(CHANNEL_COLUMNS)}"
        )
    frame = frame.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        pl.col("channel").cast(pl.String),
        pl.col("value").cast(pl.Float64),
    ).filter(pl.col("channel").is_in(wanted) & pl.col("date").is_between(start, end))
    have = set(frame.get_column("channel").unique().to_list())
    if set(wanted) - have:
        raise ValueError(
            f"{path}: no rows for channels {sorted(set(wanted) - have)} between {start} and "
            f"{end}; add them or drop them from the forecaster's channels"
        )
    return frame


def _wide(
    frame: pl.DataFrame, value: str, days: list[dt.date], names: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(sessions × names) of `value`, NaN where absent; the names (sorted) it has."""
    wide = (
        frame.select("date", "symbol", pl.col(value).cast(pl.Float64))
        .pivot(on="symbol", index="date", values=value, aggregate_function="first")
        .join(pl.DataFrame({"date": days}, schema={"date": pl.Date}), on="date", how="right")
        .sort("date")
    )
    cols = np.array(sorted(c for c in wide.columns if c != "date")) if names is None else names
    out = np.full((len(days), cols.size), np.nan)
    for j, name in enumerate(cols):
        if name in wide.columns:
            out[:, j] = wide.get_column(name).to_numpy()
    return out, cols


def _log_change(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """log(now_t / before_{t−1}) per session (NaN on the first and where undefined)."""
    out = np.full_like(now, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = np.log(now[1:] / before[:-1])
    out[~np.isfinite(out)] = np.nan
    return out


def _channel(
    name: str,
    bars: pl.DataFrame,
    extra: pl.DataFrame | None,
    days: list[dt.date],
    names: np.ndarray,
    close: np.ndarray,
    ret: np.ndarray,
) -> np.ndarray:
    """One channel as (sessions × names)."""
    if name == "ret":
        return ret
    if name == "gap":
        return _log_change(_wide(bars, "open", days, names)[0], close)
    if name == "range":
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(_wide(bars, "high", days, names)[0] / _wide(bars, "low", days, names)[0])
        out[~np.isfinite(out)] = np.nan
        return out
    if name == "volume":
        vol = _wide(bars, "volume", days, names)[0]
        return _log_change(vol, vol)
    assert extra is not None
    rows = extra.filter(pl.col("channel") == name)
    return _wide(rows, "value", days, names)[0]
