"""AFML (López de Prado, ch. 3) triple-barrier labels on the (session × symbol) grid.

Barriers are multiples of σ_t, the sample std of daily close-to-close log returns over the
`vol_window` sessions ending at the decision session t. The trade enters at the execution
price of session t+lag and is followed on closes from t+lag to the vertical barrier
t+lag+max_holding−1; the earliest strict touch of the upper or lower barrier wins.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from trademl.labels.forward import shift_up

_BLOCK_CELLS = 1 << 16  # cells per block of the scans (512 kB per float64 matrix)


def log_returns(close: np.ndarray) -> np.ndarray:
    """Close-to-close log returns between consecutive sessions; NaN if either close is missing."""
    close = np.asarray(close, dtype=np.float64)
    r = np.full_like(close, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = np.log(close[1:] / close[:-1])
    r[~np.isfinite(r)] = np.nan
    return r


def rolling_sigma(close: np.ndarray, window: int, min_valid: int | None = None) -> np.ndarray:
    """σ_t: sample std (ddof=1) of the log returns in the `window` sessions ending at t.

    `close` is [T, N] with NaN for missing bars; returns [T, N], NaN where fewer than
    `min_valid` (default ceil(0.75·window)) returns in the window are valid. Each σ_t is
    summed from its own window in a fixed order, so it is bit-identical whatever data lies
    outside the window (grid length, other symbols, block size).
    """
    if window < 2:
        raise ValueError(f"vol window must be >= 2, got {window}")
    min_valid = max(2, math.ceil(0.75 * window) if min_valid is None else min_valid)
    close = np.asarray(close, dtype=np.float64)
    t_len, n_sym = close.shape
    sigma = np.full((t_len, n_sym), np.nan)
    step = max(1, _BLOCK_CELLS // max(n_sym, 1))
    for a in range(0, t_len, step):  # blocks of sessions, for cache locality
        b = min(a + step, t_len)
        lo = max(a - window, 0)  # closes needed for the returns of rows a−window+1 … b−1
        r = log_returns(close[lo:b])
        valid = np.isfinite(r)
        r[~valid] = 0.0
        rows, off = b - a, a - lo
        n = np.zeros((rows, n_sym))
        s1 = np.zeros((rows, n_sym))
        s2 = np.zeros((rows, n_sym))
        for j in range(window - 1, -1, -1):  # the return j sessions back; oldest first
            first = off - j  # row of r for output row 0
            k0 = max(0, -first)  # output rows whose window starts before the grid skip it
            if k0 >= rows:
                continue
            x = r[first + k0 : first + rows]
            n[k0:] += valid[first + k0 : first + rows]
            s1[k0:] += x
            s2[k0:] += x * x
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1.0)
        sigma[a:b] = np.where(n >= min_valid, np.sqrt(var), np.nan)
    return sigma


def triple_barrier_matrix(
    entry: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    *,
    tp: float,
    sl: float,
    max_holding: int,
    lag: int,
    vertical_label: Literal["sign", "zero"] = "sign",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triple-barrier label, return at the touch and touch session for every decision session.

    Shapes: `entry` (execution price by session), `close` (close by session) and `sigma`
    (σ by decision session) are [T, N] with NaN for missing values. Decision t enters at
    entry[t+lag] and watches close[τ] for τ = t+lag … t+lag+max_holding−1 (missing closes
    are skipped). Returns `(label, ret, t1)`, all [T, N] indexed by decision session:
    label in {−1., 0., +1.} and ret = close[touch]/entry − 1 (NaN where there is no label),
    t1 = touch (or vertical-barrier) session index, int64, −1 where there is no label.

    Touches are strict and compared in price space: upper iff close − entry > (tp·σ)·entry,
    lower iff close − entry < −(sl·σ)·entry (same as ret > tp·σ for entry > 0). The
    difference is exact for entry/2 ≤ close ≤ 2·entry (Sterbenz) and each product is exact
    whenever its true value is representable (entry 100, σ 2⁻⁵, tp 2 → 6.25), so with such
    inputs a return exactly on the barrier never counts; close/entry − 1 would round instead
    (103/100). Without a touch the label is sign(ret at τ_v) ("sign") or 0 ("zero"), using
    the last observed close of the path if close[τ_v] is missing; absent if τ_v is past the
    grid. No label where entry is missing or ≤ 0 or σ is NaN.
    """
    if max_holding < 1 or lag < 0:
        raise ValueError(f"need max_holding >= 1 and lag >= 0, got {max_holding}, {lag}")
    if vertical_label not in ("sign", "zero"):
        raise ValueError(f"vertical_label must be 'sign' or 'zero', got {vertical_label!r}")
    entry = np.asarray(entry, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if close.ndim != 2 or entry.shape != close.shape or sigma.shape != close.shape:
        raise ValueError("entry, close and sigma must be [T, N] matrices of the same shape")
    t_len, n_sym = close.shape
    label = np.full((t_len, n_sym), np.nan)
    ret = np.full((t_len, n_sym), np.nan)
    t1 = np.full((t_len, n_sym), -1, dtype=np.int64)
    # Blocks of decision sessions (plus the path rows they need) keep the working set in
    # cache; results do not depend on the block size.
    step = max(1, _BLOCK_CELLS // max(n_sym, 1))
    for a in range(0, t_len, step):
        b = min(a + step, t_len)
        c = min(b + lag + max_holding, t_len)
        lab, r, t = _tb_block(
            entry[a:c], close[a:c], sigma[a:b], tp, sl, max_holding, lag, vertical_label
        )
        label[a:b], ret[a:b] = lab, r
        t1[a:b] = np.where(t >= 0, t + a, -1)
    return label, ret, t1


def _tb_block(
    entry: np.ndarray,
    close: np.ndarray,
    sigma: np.ndarray,
    tp: float,
    sl: float,
    max_holding: int,
    lag: int,
    vertical_label: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triple barrier for the first len(sigma) decisions of a sub-grid (indices sub-grid local)."""
    n_dec, n_sym = sigma.shape
    t_len = close.shape[0]
    e = shift_up(entry, lag)[:n_dec]  # entry price of decision t
    with np.errstate(invalid="ignore"):
        eligible = (e > 0) & np.isfinite(e) & (sigma >= 0) & np.isfinite(sigma)
        up_thr = (tp * sigma) * e
        dn_thr = -((sl * sigma) * e)
    # In-place scan over the path steps with reused buffers. A NaN close, entry or σ never
    # compares true, so missing closes are skipped without a separate mask.
    open_ = eligible.copy()  # eligible and not touched yet
    steps = np.zeros((n_dec, n_sym), dtype=np.int32)  # path steps scanned while open
    side = np.zeros((n_dec, n_sym), dtype=np.int8)  # +1 upper touch, −1 lower touch
    diff = np.empty((n_dec, n_sym))
    up = np.empty((n_dec, n_sym), dtype=bool)
    dn = np.empty((n_dec, n_sym), dtype=bool)
    for h in range(max_holding):
        s = lag + h  # τ = t + s
        rows = min(n_dec, t_len - s)
        if rows <= 0:
            break
        o, d, u, w = open_[:rows], diff[:rows], up[:rows], dn[:rows]
        with np.errstate(invalid="ignore"):
            np.subtract(close[s : s + rows], e[:rows], out=d)
            np.greater(d, up_thr[:rows], out=u)
            np.less(d, dn_thr[:rows], out=w)
        u &= o
        w &= o
        steps[:rows] += o
        side[:rows] += u
        side[:rows] -= w
        u |= w
        np.greater(o, u, out=o)  # still open: open and not hit

    t_idx = np.arange(n_dec, dtype=np.int64)[:, None]
    touched = eligible & ~open_
    # Vertical barrier: τ_v inside the grid and some close observed in [t+lag, τ_v].
    tv = t_idx + lag + max_holding - 1
    seen = np.where(np.isfinite(close), np.arange(t_len)[:, None], -1)
    np.maximum.accumulate(seen, axis=0, out=seen)  # last observed session ≤ τ
    last = np.take_along_axis(seen, np.minimum(tv, t_len - 1), axis=0)
    vert = open_ & (tv < t_len) & (last >= t_idx + lag)
    keep = touched | vert
    tau = np.where(touched, t_idx + lag + steps - 1, np.where(vert, last, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.take_along_axis(close, tau, axis=0) / e - 1.0
    ret[~keep] = np.nan
    if vertical_label == "sign":
        label = np.where(touched, side, np.sign(ret))
    else:
        label = side.astype(np.float64)  # 0 where the vertical barrier decides
    label[~keep] = np.nan
    t1 = np.where(touched, tau, tv)
    t1[~keep] = -1
    return label, ret, t1
