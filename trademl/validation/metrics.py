"""Governance metrics that judge alpha models and gate their promotion.

A missing or NaN metric must block promotion, so every function here returns NaN (never raises)
when the data are too few to define the metric; it raises ValueError only for malformed
arguments (bad shapes, out-of-range parameters). Non-finite inputs are dropped pairwise unless a
docstring says otherwise. Sharpe ratios are per period unless a function annualizes explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "PBOResult",
    "brier_score",
    "dsr",
    "dsr_from_returns",
    "expected_max_sharpe",
    "ic_by_session",
    "ic_summary",
    "long_short_returns",
    "max_drawdown",
    "moments",
    "pbo",
    "psr",
    "reliability_bins",
    "sharpe",
]

ArrayLike = np.ndarray | pl.Series | list[Any] | tuple[Any, ...]


def _float(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x.to_numpy() if isinstance(x, pl.Series) else x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return arr


def _frame(session: ArrayLike, **cols: ArrayLike) -> pl.DataFrame:
    """Long frame of session + float columns, equal lengths checked."""
    if isinstance(session, pl.Series):
        sess = session.rename("session")
    else:
        sess = pl.Series("session", session)
    data = {k: _float(v, k) for k, v in cols.items()}
    if any(v.size != sess.len() for v in data.values()):
        raise ValueError("session and value arrays must have the same length")
    return pl.DataFrame({"session": sess, **data})


def _valid(*cols: str) -> pl.Expr:
    """Rows whose session is not null and whose value columns are all finite."""
    return pl.all_horizontal(
        pl.col("session").is_not_null(), *[pl.col(c).is_finite().fill_null(False) for c in cols]
    )


# ---------------------------------------------------------------------------- information coeff.


def ic_by_session(pred: ArrayLike, y: ArrayLike, session: ArrayLike) -> pl.DataFrame:
    """Cross-sectional Pearson IC and Spearman rank IC of `pred` vs `y`, per session.

    Returns [session, ic, rank_ic, n] sorted by session, one row per session in the input; n is
    the count of finite (pred, y) pairs. ic/rank_ic are NaN when n < 3 or pred or y is constant
    in that session. Rank IC uses average ranks for ties. Grouped in polars, no per-session loop.
    """
    df = _frame(session, pred=pred, y=y)
    sessions = df.select(pl.col("session").drop_nulls().unique())
    ok = (
        (pl.len() >= 3)
        & (pl.col("pred").max() > pl.col("pred").min())
        & (pl.col("y").max() > pl.col("y").min())
    )
    agg = (
        df.filter(_valid("pred", "y"))
        .group_by("session")
        .agg(
            pl.when(ok).then(pl.corr("pred", "y")).otherwise(np.nan).alias("ic"),
            pl.when(ok)
            .then(pl.corr("pred", "y", method="spearman"))
            .otherwise(np.nan)
            .alias("rank_ic"),
            pl.len().cast(pl.Int64).alias("n"),
        )
    )
    return (
        sessions.join(agg, on="session", how="left")
        .with_columns(pl.col("ic", "rank_ic").fill_null(np.nan), pl.col("n").fill_null(0))
        .sort("session")
    )


def ic_summary(per_session: pl.DataFrame) -> dict[str, float]:
    """Summarize `ic_by_session` output over sessions, for `ic` and `rank_ic`.

    Keys `{ic,rank_ic}_{mean,std,icir,t_stat,n_sessions}`: std uses ddof=1, icir = mean/std,
    t_stat = icir·√n_sessions. NaN sessions are skipped; mean is NaN with no session left,
    std/icir/t_stat with fewer than 2 or zero std. The t-stat assumes independent sessions: with
    a k-session label, use every k-th session or it is overstated by about √k.
    """
    out: dict[str, float] = {}
    for col in ("ic", "rank_ic"):
        v = _float(per_session.get_column(col), col)
        v = v[np.isfinite(v)]
        n = v.size
        mean = float(v.mean()) if n else math.nan
        std = float(v.std(ddof=1)) if n >= 2 else math.nan
        icir = mean / std if std > 0 else math.nan
        out |= {
            f"{col}_mean": mean,
            f"{col}_std": std,
            f"{col}_icir": icir,
            f"{col}_t_stat": icir * math.sqrt(n),
            f"{col}_n_sessions": float(n),
        }
    return out


# ------------------------------------------------------------------------- long-short backtest


def long_short_returns(
    pred: ArrayLike,
    fwd_ret: ArrayLike,
    session: ArrayLike,
    *,
    quantile: float = 0.2,
    spread_bps: float = 5.0,
    turnover: float | ArrayLike | None = None,
) -> pl.DataFrame:
    """Per-session return of an equal-weight long-top / short-bottom `quantile` portfolio.

    Each session, among names with finite pred and fwd_ret, k = floor(quantile·n) names with the
    highest pred go long and the k lowest go short (ties broken by input order), $1 per leg:
    gross = mean(long fwd_ret) − mean(short fwd_ret), ret = gross − cost.

    Cost convention (conservative): every trade crosses half the quoted spread, spread_bps/2 bp
    of the notional traded. `turnover` is the notional traded per leg per session as a multiple
    of that leg's notional; the default None means a full round trip (open and close) every
    session, turnover = 2. So cost = turnover · 2 legs · spread_bps/2 · 1e-4 = turnover ·
    spread_bps · 1e-4, i.e. 10 bp per session at the defaults. `turnover` may be a scalar or an
    array with one value per output row (sessions sorted).

    fwd_ret over k > 1 sessions overlaps from one session to the next: take every k-th row
    before `sharpe`/`max_drawdown`, with periods_per_year = 252 / k.

    Returns [session, n, n_leg, long_ret, short_ret, gross, cost, ret] sorted by session;
    returns are NaN for sessions with n_leg = 0 (fewer than 1/quantile valid names).
    """
    if not 0.0 < quantile <= 0.5:
        raise ValueError("quantile must be in (0, 0.5]")
    if spread_bps < 0:
        raise ValueError("spread_bps must be non-negative")
    df = _frame(session, pred=pred, ret=fwd_ret)
    sessions = df.select(pl.col("session").drop_nulls().unique())
    n, k, r = pl.col("n"), pl.col("k"), pl.col("r")
    agg = (
        df.filter(_valid("pred", "ret"))
        .with_columns(
            n=pl.len().over("session").cast(pl.Int64),
            r=pl.col("pred").rank("ordinal").over("session").cast(pl.Int64),
        )
        # Tiny epsilon so quantile·n landing a hair under an integer does not lose a name.
        .with_columns(k=(pl.lit(quantile) * n + 1e-9).floor().cast(pl.Int64))
        .group_by("session")
        .agg(
            n.first(),
            k.first().alias("n_leg"),
            pl.col("ret").filter(r > n - k).mean().alias("long_ret"),
            pl.col("ret").filter(r <= k).mean().alias("short_ret"),
        )
    )
    out = (
        sessions.join(agg, on="session", how="left")
        .with_columns(
            pl.col("n", "n_leg").fill_null(0), pl.col("long_ret", "short_ret").fill_null(np.nan)
        )
        .sort("session")
    )
    if turnover is None:
        to = np.full(out.height, 2.0)
    else:
        to = np.broadcast_to(np.asarray(turnover, dtype=np.float64), (out.height,))
        if (to < 0).any():
            raise ValueError("turnover must be non-negative")
    cost = to * spread_bps * 1e-4
    gross = out.get_column("long_ret").to_numpy() - out.get_column("short_ret").to_numpy()
    return out.with_columns(
        gross=pl.Series(gross), cost=pl.Series(cost), ret=pl.Series(gross - cost)
    )


def sharpe(returns: ArrayLike, periods_per_year: float = 252.0) -> float:
    """Annualized Sharpe ratio, mean/std(ddof=1)·√periods_per_year, of per-period returns.

    For k-session returns sampled without overlap use periods_per_year = 252 / k; pass 1 for the
    per-period ratio PSR/DSR expect. Non-finite returns are skipped (no position that period);
    NaN with fewer than 2 returns or zero std.
    """
    r = _float(returns, "returns")
    r = r[np.isfinite(r)]
    if r.size < 2:
        return math.nan
    sd = float(r.std(ddof=1))
    return float(r.mean()) / sd * math.sqrt(periods_per_year) if sd > 0 else math.nan


def max_drawdown(returns: ArrayLike) -> float:
    """Largest peak-to-trough loss of the compounded equity curve ∏(1 + r), starting at 1.

    A positive fraction (0.25 = a 25 % drawdown; 1 = wiped out); non-finite returns are skipped;
    NaN when there is no return.
    """
    r = _float(returns, "returns")
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peak = np.maximum.accumulate(equity)
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.where(peak > 0, 1.0 - equity / peak, 1.0)
    return float(min(dd.max(), 1.0))


# ----------------------------------------------------------------------------- PSR and DSR


#: The standard normal (the standard library's: scipy.stats costs every CLI start ≈ 0.6 s).
_NORMAL = NormalDist()


def moments(r: np.ndarray) -> tuple[float, float]:
    """Sample skewness and non-excess kurtosis of `r` (biased, as scipy.stats' defaults:
    m3 / m2^1.5 and m4 / m2²); NaN for fewer than 3 values or zero variance."""
    r = np.asarray(r, dtype=np.float64)
    if r.size < 3:
        return math.nan, math.nan
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if not m2 > 0:
        return math.nan, math.nan
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def psr(sr: float, n_obs: int, skew: float, kurtosis: float, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe Ratio (Bailey & López de Prado 2012): P(true SR > sr_benchmark).

    PSR = Φ((SR − SR*)·√(T−1) / √(1 − γ3·SR + (γ4−1)/4·SR²)), with `sr`, `sr_benchmark`
    per period (NOT annualized), T = n_obs and `kurtosis` non-excess (normal = 3). NaN when
    n_obs < 2, an input is not finite, or the variance term is not positive.
    """
    vals = (sr, skew, kurtosis, sr_benchmark)
    if n_obs < 2 or not all(math.isfinite(v) for v in vals):
        return math.nan
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if var <= 0:
        return math.nan
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)
    return float(_NORMAL.cdf(z))


def expected_max_sharpe(var_sr: float, n_trials: int) -> float:
    """Expected maximum Sharpe ratio of `n_trials` skill-less trials with Sharpe variance var_sr.

    √V·((1−γ)Φ⁻¹(1−1/N) + γΦ⁻¹(1−1/(N·e))), γ = Euler–Mascheroni (Bailey & López de Prado
    2014); in the units of var_sr. One trial means no selection: 0. NaN if var_sr is negative or
    not finite.
    """
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if not math.isfinite(var_sr) or var_sr < 0:
        return math.nan
    if n_trials == 1:
        return 0.0
    g = np.euler_gamma
    z = (1 - g) * _NORMAL.inv_cdf(1 - 1 / n_trials) + g * _NORMAL.inv_cdf(1 - 1 / (n_trials * np.e))
    return float(math.sqrt(var_sr) * z)


def dsr(sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int, var_sr: float) -> float:
    """Deflated Sharpe Ratio (Bailey & López de Prado 2014): PSR against the expected maximum.

    PSR with SR* = expected_max_sharpe(var_sr, n_trials): the probability the best of
    `n_trials` is skilled after correcting for selection. sr and var_sr per period.
    """
    return psr(sr, n_obs, skew, kurtosis, expected_max_sharpe(var_sr, n_trials))


def dsr_from_returns(
    returns: ArrayLike, n_trials: int, trial_sharpes_or_var: float | ArrayLike
) -> float:
    """DSR of a per-period return series, with skew and (non-excess) kurtosis estimated from it.

    `trial_sharpes_or_var` is either the variance of the per-period Sharpe ratios across trials
    (a scalar) or those Sharpe ratios themselves (variance taken with ddof=1). Non-finite
    returns are skipped; NaN with fewer than 3 returns, zero std, or fewer than 2 trial Sharpes.
    """
    r = _float(returns, "returns")
    r = r[np.isfinite(r)]
    if np.ndim(trial_sharpes_or_var) == 0:
        var_sr = float(trial_sharpes_or_var)
    else:
        t = _float(trial_sharpes_or_var, "trial_sharpes")
        t = t[np.isfinite(t)]
        var_sr = float(t.var(ddof=1)) if t.size >= 2 else math.nan
    if r.size < 3 or not r.std() > 0:
        return math.nan
    sr = sharpe(r, periods_per_year=1.0)
    skew, kurt = moments(r)
    return dsr(sr, r.size, skew, kurt, n_trials, var_sr)


# ------------------------------------------------------------------------------------ PBO


@dataclass(frozen=True)
class PBOResult:
    """CSCV outcome: one entry per in-sample/out-of-sample split in the per-split arrays."""

    pbo: float  # share of splits with logit <= 0: the IS-best is at or below the OOS median
    logits: np.ndarray  # λ = ln(ω / (1 − ω))
    oos_rank: np.ndarray  # ω = OOS rank / (N + 1) of the IS-best strategy, in (0, 1)
    best_is: np.ndarray  # column index of the IS-best strategy
    is_sharpe: np.ndarray  # its in-sample Sharpe (per period)
    oos_sharpe: np.ndarray  # its out-of-sample Sharpe (per period)
    prob_oos_loss: float  # share of splits where the IS-best loses money OOS
    n_combinations: int


def _nan_pbo() -> PBOResult:
    e = np.empty(0)
    return PBOResult(math.nan, e, e, e.astype(np.int64), e, e, math.nan, 0)


def pbo(perf: np.ndarray, n_partitions: int = 16, *, chunk: int = 2048) -> PBOResult:
    """Probability of Backtest Overfitting by CSCV (Bailey, Borwein, López de Prado, Zhu 2015).

    perf [T, N] holds per-period returns of N candidate strategies. Rows are cut into S =
    n_partitions contiguous blocks (sizes differ by at most one); for each of the C(S, S/2)
    choices of S/2 blocks as in-sample (the rest out-of-sample) the strategy with the best IS
    Sharpe (mean/std, first on ties) is ranked OOS (average ranks, 1 = worst), ω = rank/(N+1),
    λ = ln(ω/(1−ω)), and PBO = share of λ <= 0. Pure noise gives about 0.5 (for even N).

    Raises ValueError for an odd or < 2 n_partitions or perf not 2-D. Returns pbo NaN (and empty
    arrays) when N < 2, T < 2·S (every block needs 2 rows for a std), or perf holds non-finite
    values. A strategy with zero std in a half ranks below all others there.
    """
    perf = np.asarray(perf, dtype=np.float64)
    if perf.ndim != 2:
        raise ValueError("perf must be a 2-D [T, N_strategies] array")
    if n_partitions < 2 or n_partitions % 2:
        raise ValueError("n_partitions must be an even integer >= 2")
    t_len, n_strat = perf.shape
    if n_strat < 2 or t_len < 2 * n_partitions or not np.isfinite(perf).all():
        return _nan_pbo()
    # Centre columns so sum-of-squares variances do not cancel; add the mean back for Sharpe.
    mu = perf.mean(axis=0)
    x = perf - mu
    starts = np.array([b[0] for b in np.array_split(np.arange(t_len), n_partitions)])
    b_sum = np.add.reduceat(x, starts, axis=0)  # [S, N]
    b_sq = np.add.reduceat(x * x, starts, axis=0)
    b_n = np.diff(np.append(starts, t_len)).astype(np.float64)  # [S]
    combos = np.array(list(combinations(range(n_partitions), n_partitions // 2)))
    n_comb = combos.shape[0]
    mask = np.zeros((n_comb, n_partitions))
    mask[np.arange(n_comb)[:, None], combos] = 1.0

    # Variances below this are rounding noise of a constant column: treated as zero std.
    var_floor = (1e-12 * np.abs(perf).max(axis=0)) ** 2

    def _sr(s: np.ndarray, q: np.ndarray, n: np.ndarray) -> np.ndarray:
        m = s / n[:, None]
        var = (q - n[:, None] * m * m) / (n[:, None] - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (m + mu) / np.sqrt(var)
        return np.where(var > var_floor, out, -np.inf)

    best = np.empty(n_comb, dtype=np.int64)
    rank = np.empty(n_comb)
    is_sr, oos_sr = np.empty(n_comb), np.empty(n_comb)
    tot_s, tot_q, tot_n = b_sum.sum(0), b_sq.sum(0), b_n.sum()
    for lo in range(0, n_comb, chunk):
        mk = mask[lo : lo + chunk]
        i_s, i_q, i_n = mk @ b_sum, mk @ b_sq, mk @ b_n
        sr_is = _sr(i_s, i_q, i_n)
        sr_oos = _sr(tot_s - i_s, tot_q - i_q, tot_n - i_n)
        bi = np.argmax(sr_is, axis=1)
        rows = np.arange(bi.size)
        o = sr_oos[rows, bi][:, None]
        less, eq = (sr_oos < o).sum(1), (sr_oos == o).sum(1)
        sl = slice(lo, lo + bi.size)
        best[sl], rank[sl] = bi, less + (eq + 1) / 2.0
        is_sr[sl], oos_sr[sl] = sr_is[rows, bi], o[:, 0]
    omega = rank / (n_strat + 1)
    logits = np.log(omega / (1 - omega))
    return PBOResult(
        pbo=float((logits <= 0).mean()),
        logits=logits,
        oos_rank=omega,
        best_is=best,
        is_sharpe=is_sr,
        oos_sharpe=oos_sr,
        prob_oos_loss=float((oos_sr < 0).mean()),
        n_combinations=n_comb,
    )


# ---------------------------------------------------------------------------- calibration


def _prob_outcome(prob: ArrayLike, outcome: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, o = _float(prob, "prob"), _float(outcome, "outcome")
    if p.size != o.size:
        raise ValueError("prob and outcome must have the same length")
    keep = np.isfinite(p) & np.isfinite(o)
    p, o = p[keep], o[keep]
    if ((p < 0) | (p > 1)).any():
        raise ValueError("prob must lie in [0, 1]")
    if not np.isin(o, (0.0, 1.0)).all():
        raise ValueError("outcome must be 0/1")
    return p, o


def brier_score(prob: ArrayLike, outcome: ArrayLike) -> float:
    """Mean squared error of predicted probabilities vs 0/1 outcomes (lower is better).

    Non-finite pairs are skipped; NaN when none is left. Raises ValueError for prob outside
    [0, 1] or outcomes other than 0/1.
    """
    p, o = _prob_outcome(prob, outcome)
    return float(np.mean((p - o) ** 2)) if p.size else math.nan


def reliability_bins(prob: ArrayLike, outcome: ArrayLike, n_bins: int = 10) -> pl.DataFrame:
    """Reliability diagram table: equal-width probability bins on [0, 1].

    Returns [bin_lo, bin_hi, mean_pred, frac_pos, count], one row per bin including empty ones
    (mean_pred and frac_pos NaN there). Bins are [lo, hi) except the last, which includes 1.
    A calibrated model has frac_pos ≈ mean_pred in every populated bin.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    p, o = _prob_outcome(prob, outcome)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, p, n_bins) / count
        frac_pos = np.bincount(idx, o, n_bins) / count
    return pl.DataFrame(
        {
            "bin_lo": edges[:-1],
            "bin_hi": edges[1:],
            "mean_pred": mean_pred,
            "frac_pos": frac_pos,
            "count": count.astype(np.int64),
        }
    )
