"""Out-of-sample evaluation of the sizing policy against simple sizing baselines.

Per-row PnL = pos·y − cost_bps·1e-4·|Δpos| (Δ against the symbol's previous session in the
frame), averaged over the symbols of each session, then annualized Sharpe and max drawdown
(trademl.validation.metrics) of that per-session series. Baselines: `long_1`, a constant
position of +1 whatever the forecast; `sign`, position sign(y_hat) — constant size 1 in the
forecast's direction, i.e. the policy's action space with a fixed action; `vol_target`,
size min(target_vol / vol, 2) in the forecast's direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from trademl.models.policy.beta import ACTION_MAX, position
from trademl.models.policy.data import (
    BASE_FEATURES,
    check_frame,
    previous_index,
    session_codes,
    session_mean_pnl,
)
from trademl.validation.metrics import max_drawdown, sharpe

if TYPE_CHECKING:
    from trademl.models.policy.sizer import GRPOSizer

__all__ = ["baseline_positions", "evaluate_policy", "evaluate_positions", "session_pnl"]


def session_pnl(frame: pl.DataFrame, pos: np.ndarray, *, cost_bps: float) -> pl.DataFrame:
    """[session, pnl, turnover, n] sorted by session for signed positions `pos` (row-aligned
    with `frame`; NaN = flat); pnl and turnover are means over the session's symbols."""
    check_frame(frame, (), need_y=True)
    pos = np.asarray(pos, dtype=np.float64)
    if pos.shape != (frame.height,):
        raise ValueError(f"positions must have one value per frame row ({frame.height})")
    codes, sessions = session_codes(frame)
    y = frame.get_column("y").cast(pl.Float64).to_numpy()
    pos = np.where(np.isfinite(y), pos, np.nan)  # no realized return: no position, no PnL
    pnl, turn = session_mean_pnl(
        pos, np.nan_to_num(y), previous_index(frame), codes, len(sessions), cost_bps
    )
    return pl.DataFrame(
        {
            "session": sessions,
            "pnl": pnl,
            "turnover": turn,
            "n": np.bincount(codes, minlength=len(sessions)).astype(np.int64),
        }
    )


def baseline_positions(frame: pl.DataFrame, *, target_vol: float) -> dict[str, np.ndarray]:
    """Signed baseline positions per row: long_1 (+1), sign (sign(y_hat)), vol_target
    (min(target_vol/vol, 2)·sign(y_hat); flat where vol is not positive)."""
    if not target_vol > 0:
        raise ValueError(f"target_vol must be > 0, got {target_vol}")
    check_frame(frame, BASE_FEATURES[:2], need_y=False)
    y_hat = frame.get_column("y_hat").cast(pl.Float64).to_numpy()
    vol = frame.get_column("vol").cast(pl.Float64).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        vt = np.where(vol > 0, np.minimum(target_vol / vol, ACTION_MAX), np.nan)
    return {
        "long_1": np.ones_like(y_hat),
        "sign": position(np.ones_like(y_hat), y_hat),
        "vol_target": position(vt, y_hat),
    }


def evaluate_positions(
    frame: pl.DataFrame,
    positions: Mapping[str, np.ndarray],
    *,
    cost_bps: float,
    periods_per_year: float = 252.0,
) -> pl.DataFrame:
    """One row per strategy: [strategy, sharpe, max_drawdown, mean_pnl, turnover, n_sessions]."""
    rows = []
    for name, pos in positions.items():
        s = session_pnl(frame, pos, cost_bps=cost_bps)
        pnl = s.get_column("pnl").to_numpy()
        rows.append(
            {
                "strategy": name,
                "sharpe": sharpe(pnl, periods_per_year),
                "max_drawdown": max_drawdown(pnl),
                "mean_pnl": float(np.nanmean(pnl)) if np.isfinite(pnl).any() else np.nan,
                "turnover": float(np.nanmean(s.get_column("turnover").to_numpy())),
                "n_sessions": s.height,
            }
        )
    return pl.DataFrame(rows)


def evaluate_policy(
    model: GRPOSizer, frame: pl.DataFrame, *, target_vol: float | None = None
) -> pl.DataFrame:
    """The fitted policy and the three baselines on `frame`, with the model's cost_bps.

    `frame` must start after the last validation session (early stopping looked at those).
    target_vol defaults to the median training vol (so the average size is about 1)."""
    model._check_fitted()
    first = frame.get_column("session").min()
    if first is not None and first <= model.val_end_:
        raise ValueError(
            f"evaluation frame starts at session {first}, not after the last session the policy "
            f"saw ({model.val_end_}, validation): expected out-of-sample sessions only"
        )
    tv = model.vol_target_ if target_vol is None else target_vol
    pos = {"policy": model.positions(frame), **baseline_positions(frame, target_vol=tv)}
    return evaluate_positions(
        frame, pos, cost_bps=model.params.cost_bps, periods_per_year=model.params.periods_per_year
    )
