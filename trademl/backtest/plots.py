"""Report charts as PNG bytes: equity vs benchmark, drawdown, rolling Rank IC, turnover.

Each chart is a standalone matplotlib Figure drawn on the Agg canvas; pyplot is never
imported, so no global figure state is created or leaked. matplotlib is imported when a chart
is drawn, not with the module: every Dagster CLI start loads this module (≈ 0.4 s saved).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from trademl.lazy import settled

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["drawdown_png", "equity_png", "rolling_ic_png", "turnover_png"]

_SIZE = (8.0, 3.5)
_DPI = 100


def _x(n: int, dates: Sequence | None) -> Sequence:
    if dates is None:
        return np.arange(n)
    if len(dates) != n:
        raise ValueError(f"dates has {len(dates)} entries for {n} values")
    return list(dates)


@functools.cache
def _matplotlib() -> tuple[type[Figure], type]:
    """matplotlib's Figure and Agg canvas, imported once with the collector paused."""
    with settled():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def _png(fig: Figure) -> bytes:
    _matplotlib()[1](fig)  # attach the Agg canvas
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _axes(title: str, ylabel: str) -> tuple[Figure, object]:
    fig = _matplotlib()[0](figsize=_SIZE)
    # fixed margins, sized for these charts' labels: a constrained layout measures every
    # artist again on each draw (≈ 0.06 s of each chart, 6 charts in a daily run)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.13, top=0.91)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def equity_png(
    equity: np.ndarray,
    benchmark: np.ndarray | None = None,
    dates: Sequence | None = None,
    *,
    label: str = "strategy",
    benchmark_label: str = "benchmark",
) -> bytes:
    """Equity curve (and a benchmark equity curve, same length) as PNG bytes."""
    eq = np.asarray(equity, dtype=np.float64)
    fig, ax = _axes("Equity", "growth of 1")
    x = _x(eq.size, dates)
    ax.plot(x, eq, label=label, lw=1.2)
    if benchmark is not None:
        bm = np.asarray(benchmark, dtype=np.float64)
        if bm.size != eq.size:
            raise ValueError(f"benchmark has {bm.size} values for {eq.size} equity values")
        ax.plot(x, bm, label=benchmark_label, lw=1.0, alpha=0.8)
    ax.legend(loc="upper left")
    return _png(fig)


def drawdown_png(equity: np.ndarray, dates: Sequence | None = None) -> bytes:
    """Drawdown 1 − equity / running peak (peak starting at 1), shaded, as PNG bytes."""
    eq = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    dd = np.where(peak > 0, eq / peak - 1.0, -1.0)
    fig, ax = _axes("Drawdown", "fraction below peak")
    x = _x(eq.size, dates)
    ax.fill_between(x, dd, 0.0, color="tab:red", alpha=0.4, lw=0)
    ax.plot(x, dd, color="tab:red", lw=0.8)
    return _png(fig)


def rolling_ic_png(ic: np.ndarray, dates: Sequence | None = None, *, window: int = 63) -> bytes:
    """Per-session Rank IC (faint) and its rolling mean over `window` sessions, as PNG bytes.

    NaN sessions are skipped in the rolling mean, which needs half a window of values.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    v = np.asarray(ic, dtype=np.float64)
    ok = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    lo = np.maximum(np.arange(v.size) + 1 - window, 0)
    hi = np.arange(v.size) + 1
    cnt = ccnt[hi] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        roll = np.where(cnt >= max(1, window // 2), (csum[hi] - csum[lo]) / cnt, np.nan)
    fig, ax = _axes(f"Rank IC ({window}-session rolling mean)", "Rank IC")
    x = _x(v.size, dates)
    ax.plot(x, v, lw=0.5, alpha=0.3, color="grey", label="per session")
    ax.plot(x, roll, lw=1.4, color="tab:blue", label="rolling mean")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.legend(loc="upper left")
    return _png(fig)


def turnover_png(turnover: np.ndarray, dates: Sequence | None = None) -> bytes:
    """One-way turnover per session (fraction of capital) as PNG bytes."""
    v = np.asarray(turnover, dtype=np.float64)
    fig, ax = _axes("Turnover", "one-way, fraction of capital")
    ax.plot(_x(v.size, dates), v, lw=0.8, color="tab:green")
    return _png(fig)
