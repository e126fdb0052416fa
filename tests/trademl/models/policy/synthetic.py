"""Synthetic forecast frames with a planted, closed-form optimal size.

For reward pos·y − (λ/2)·pos²·vol² with E[y | state] = y_hat and pos = size·sign(y_hat), the
expected reward size·|y_hat| − (λ/2)·size²·vol² peaks at size* = |y_hat| / (λ·vol²). We draw
size* ~ U(0.1, 1.9) (the interior of [0, 2]) and vol, then set |y_hat| = size*·λ·vol²; the
realized return is y = y_hat + noise·vol·ε, so size* is also the Sharpe-optimal weighting.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def planted_frame(
    n_symbols: int,
    n_sessions: int,
    *,
    seed: int,
    risk_aversion: float = 10.0,
    noise: float = 1.0,
    start: int = 0,
) -> tuple[pl.DataFrame, np.ndarray]:
    """(frame with session, symbol, y_hat, vol, trend, y; the optimal size per row)."""
    rng = np.random.default_rng(seed)
    n = n_symbols * n_sessions
    size_opt = rng.uniform(0.1, 1.9, n)
    vol = rng.uniform(0.01, 0.03, n)
    sign = rng.choice([-1.0, 1.0], n)
    y_hat = sign * size_opt * risk_aversion * vol**2
    y = y_hat + noise * vol * rng.standard_normal(n)
    frame = pl.DataFrame(
        {
            "session": np.repeat(np.arange(start, start + n_sessions), n_symbols),
            "symbol": np.tile([f"S{i:03d}" for i in range(n_symbols)], n_sessions),
            "y_hat": y_hat,
            "vol": vol,
            "trend": rng.normal(0.0, 0.01, n),
            "y": y,
        }
    )
    return frame, size_opt
