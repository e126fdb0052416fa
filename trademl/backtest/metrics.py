"""Performance summary of a backtest: return, risk, drawdown, turnover, PSR and DSR.

Sharpe, max drawdown, PSR and DSR come from trademl.validation.metrics; like those, a metric
that is undefined for the data (too few sessions, zero variance) is NaN, never an exception.
"""

from __future__ import annotations

import math

import numpy as np

from trademl.backtest.engine import BacktestResult
from trademl.validation.metrics import dsr_from_returns, max_drawdown, moments, psr, sharpe

__all__ = ["performance_metrics"]


def performance_metrics(
    result: BacktestResult | np.ndarray,
    *,
    turnover: np.ndarray | None = None,
    n_trials: int = 1,
    trial_sharpes_or_var: float | np.ndarray | None = None,
    periods_per_year: float = 252.0,
) -> dict[str, float]:
    """Summary of daily net returns (a BacktestResult, or an array of returns).

    Keys: cagr (equity_end^(ppy/n) − 1), ann_vol (std·√ppy, ddof=1), sharpe (annualized),
    sortino (mean / √mean(min(r, 0)²) · √ppy, downside deviation against 0 over all
    sessions), max_drawdown (positive fraction), calmar (cagr / max_drawdown), avg_turnover
    (mean one-way turnover per session; NaN without turnover), hit_rate (share of sessions
    with r > 0 among those with r ≠ 0), psr (P[true Sharpe > 0]), dsr (deflated for
    n_trials), n_sessions.

    DSR needs the variance of the per-session Sharpe ratios across the trials:
    `trial_sharpes_or_var` is that variance or the trials' Sharpes. When omitted with
    n_trials > 1, the trials are taken as skill-less, whose Sharpes vary by the sampling
    variance of the estimator, (1 − γ3·SR + (γ4−1)/4·SR²)/(T−1). With n_trials = 1, DSR = PSR.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if isinstance(result, BacktestResult):
        r = np.asarray(result.net_returns, dtype=np.float64)
        turnover = result.turnover if turnover is None else turnover
    else:
        r = np.asarray(result, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = r.size
    nan = math.nan
    equity_end = float(np.prod(1.0 + r)) if n else nan
    cagr = equity_end ** (periods_per_year / n) - 1.0 if n and equity_end > 0 else nan
    if n and equity_end <= 0:
        cagr = -1.0
    ann_vol = float(r.std(ddof=1) * math.sqrt(periods_per_year)) if n >= 2 else nan
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if n else nan
    sortino = float(r.mean()) / down * math.sqrt(periods_per_year) if n >= 2 and down > 0 else nan
    mdd = max_drawdown(r)
    calmar = cagr / mdd if mdd and math.isfinite(mdd) and mdd > 0 else nan
    moved = r[r != 0]
    hit = float((moved > 0).mean()) if moved.size else nan

    sr1 = sharpe(r, periods_per_year=1.0)
    skew, kurt = moments(r) if n >= 3 and r.std() > 0 else (nan, nan)
    p = psr(sr1, n, skew, kurt) if n >= 3 else nan
    if n_trials == 1:
        var_sr: float | np.ndarray = 0.0
    elif trial_sharpes_or_var is None:
        var_sr = (1.0 - skew * sr1 + (kurt - 1.0) / 4.0 * sr1**2) / (n - 1) if n >= 3 else nan
    else:
        var_sr = trial_sharpes_or_var
    d = dsr_from_returns(r, n_trials, var_sr)
    avg_to = nan
    if turnover is not None:
        to = np.asarray(turnover, dtype=np.float64)
        to = to[np.isfinite(to)]
        avg_to = float(to.mean()) if to.size else nan
    return {
        "cagr": float(cagr),
        "ann_vol": ann_vol,
        "sharpe": sharpe(r, periods_per_year),
        "sortino": sortino,
        "max_drawdown": mdd,
        "calmar": calmar,
        "avg_turnover": avg_to,
        "hit_rate": hit,
        "psr": p,
        "dsr": d,
        "n_sessions": float(n),
    }
