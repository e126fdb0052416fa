"""Metrics of out-of-fold backtest paths: rank IC and the long-short book per path, and the
selection-aware statistics (DSR over the configurations tried, PBO across them).

Shared by every CPCV sleeve and the stacker, so their gates read numbers computed alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from trademl.validation.metrics import dsr, max_drawdown, pbo, sharpe
from trademl.validation.session_matrix import SessionMatrix

__all__ = ["moments", "path_metrics", "pbo_partitions", "selection_stats"]


def path_metrics(
    y: np.ndarray, session: np.ndarray, oof: np.ndarray, *, horizon: int, spread_bps: float
) -> dict[str, Any]:
    """Rank IC per path and Sharpe/drawdown of the long-short quintile book per path.

    `oof` is [n_paths, n_rows]; `session` the rows' session ordinals. Label windows overlap
    from one session to the next, so Sharpe and drawdown use every `horizon`-th session only
    (non-overlapping periods, `252/horizon` a year). Per-session statistics equal
    `ic_by_session` and `long_short_returns` (computed by `SessionMatrix`, one sort each).
    """
    keep_sessions = np.unique(session)[::horizon]
    keep = np.isin(session, keep_sessions)
    every, sparse = SessionMatrix(session), SessionMatrix(session[keep])
    rank_ics, sharpes, drawdowns, returns = [], [], [], []
    for p in range(oof.shape[0]):
        ic = every.rank_ic(oof[p], y)
        ic = ic[np.isfinite(ic)]
        rank_ics.append(float(ic.mean()) if ic.size else math.nan)
        r = sparse.long_short(oof[p][keep], y[keep], spread_bps=spread_bps)
        returns.append(r)
        sharpes.append(sharpe(r, periods_per_year=252 / horizon))
        drawdowns.append(max_drawdown(r))
    return {
        "rank_ic_by_path": rank_ics,
        "rank_ic": float(np.mean(rank_ics)),
        "rank_ic_median_path": float(np.median(rank_ics)),
        "sharpe_by_path": sharpes,
        "path_sharpe_median": float(np.median(sharpes)),
        "max_drawdown_by_path": drawdowns,
        "max_drawdown": float(np.max(drawdowns)),
        "returns_by_path": returns,
    }


def moments(r: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of a return series."""
    r = np.asarray(r, dtype=float)
    if r.size < 3 or np.std(r) == 0:
        return float("nan"), float("nan")
    z = (r - r.mean()) / r.std()
    return float(np.mean(z**3)), float(np.mean(z**4))


def pbo_partitions(n_rows: int) -> int:
    """CSCV blocks: 16 when the series allows, else the largest even number ≥ 2."""
    s = min(16, n_rows // 4)
    return max(2, s - s % 2)


def selection_stats(
    median_path_returns: np.ndarray, trial_returns: Sequence[np.ndarray], n_trials: int
) -> dict[str, float]:
    """DSR of the median path's per-period returns, deflated for `n_trials` configurations
    (with the Sharpe variance across `trial_returns`), and the PBO across `trial_returns`.

    NaN where the data cannot support a number (one trial: no PBO; fail closed downstream).
    """
    r = np.asarray(median_path_returns, dtype=float)
    trial_sr = [sharpe(t, periods_per_year=1.0) for t in trial_returns if len(t) > 1]
    var_sr = float(np.var(trial_sr, ddof=1)) if len(trial_sr) > 1 else float("nan")
    skew, kurt = moments(r)
    deflated = dsr(
        sharpe(r, periods_per_year=1.0),
        len(r),
        skew,
        kurt,
        max(n_trials, 1),
        var_sr if n_trials > 1 else 0.0,
    )
    usable = [t for t in trial_returns if len(t) == len(r)]
    pbo_value = (
        pbo(np.column_stack(usable), n_partitions=pbo_partitions(len(r))).pbo
        if len(usable) > 1
        else math.nan
    )
    return {"dsr": deflated, "pbo": pbo_value}
