"""One session's execution inputs: Almgren–Chriss parameters per name, the slice schedule of
the plan, and a feature-drift flag for the tripwires."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from trademl.execution.orders import Order
from trademl.execution.schedule import ACParams, slice_order

__all__ = ["DRIFT_EXCLUDE", "ac_params", "feature_drift", "slice_plan"]

#: Feature prefixes the drift monitor ignores: calendar features and per-session ranks/z-scores
#: are stationary by construction.
DRIFT_EXCLUDE = ("dow_", "xs_")


def ac_params(
    price: float,
    sigma_daily: float,
    adv: float,
    *,
    half_spread_bps: float,
    fee_bps: float = 0.0,
    risk_aversion: float = 1e-6,
) -> ACParams:
    """Almgren–Chriss parameters in days from a name's price, daily return σ and ADV (shares).

    The paper's calibration (Almgren & Chriss 2000, §4): trading 1% of ADV in a day costs one
    spread of temporary impact (η = spread / (0.01·ADV)), 10% of ADV moves the price one spread
    permanently (γ = spread / (0.1·ADV)); ε = half spread + fees per share; σ in $/share/√day.
    """
    if not (price > 0 and adv > 0 and sigma_daily >= 0):
        raise ValueError(
            f"AC parameters need price > 0, adv > 0, sigma >= 0; got {price}, {adv}, {sigma_daily}"
        )
    spread = 2.0 * half_spread_bps * 1e-4 * price
    return ACParams(
        sigma=sigma_daily * price,
        eta=spread / (0.01 * adv),
        gamma=spread / (0.1 * adv),
        epsilon=spread / 2.0 + fee_bps * 1e-4 * price,
        risk_aversion=risk_aversion,
    )


def slice_plan(
    orders: Sequence[Order],
    risk: Mapping[str, tuple[float, float]],
    *,
    start: dt.datetime,
    end: dt.datetime,
    n_slices: int,
    method: str,
    half_spread_bps: float,
    fee_bps: float = 0.0,
    risk_aversion: float = 1e-6,
) -> pl.DataFrame:
    """Child slices of every parent order over [start, end): AC where σ and ADV are known,
    TWAP otherwise (or when `method` is "twap"). One row per child with its send time."""
    rows = []
    for o in orders:
        sigma, adv = risk.get(o.symbol, (math.nan, math.nan))
        ok = method == "almgren_chriss" and np.isfinite([sigma, adv, o.ref_price]).all()
        ok = ok and adv > 0 and o.ref_price > 0 and sigma >= 0
        params = (
            ac_params(
                o.ref_price,
                sigma,
                adv,
                half_spread_bps=half_spread_bps,
                fee_bps=fee_bps,
                risk_aversion=risk_aversion,
            )
            if ok
            else None
        )
        children = slice_order(
            o,
            start=start,
            end=end,
            n_slices=n_slices,
            method="ac" if params is not None else "twap",
            params=params,
        )
        rows += [
            {
                "parent_id": c.parent_id,
                "client_order_id": c.order.client_order_id,
                "symbol": o.symbol,
                "side": o.side,
                "slice": c.index,
                "at": c.at.isoformat(timespec="minutes"),
                "qty": c.order.qty,
                "method": "almgren_chriss" if params is not None else "twap",
            }
            for c in children
        ]
    schema = {
        "parent_id": pl.String,
        "client_order_id": pl.String,
        "symbol": pl.String,
        "side": pl.String,
        "slice": pl.Int64,
        "at": pl.String,
        "qty": pl.Int64,
        "method": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def feature_drift(
    features: pl.DataFrame,
    session: dt.date,
    *,
    threshold: float,
    min_history: int = 20,
    exclude: Sequence[str] = DRIFT_EXCLUDE,
) -> tuple[bool, str]:
    """Has the session's cross-section of features moved far from its trailing history?

    For each feature, z = (today's cross-sectional mean − mean of the earlier sessions' means)
    / their std. Flags when any |z| > threshold; the detail names the worst feature. Uses only
    sessions ≤ `session` that are in `features`. Too little history (< min_history earlier
    sessions) cannot judge and does not flag.
    """
    cols = [
        c
        for c in features.columns
        if c not in ("date", "symbol") and not c.startswith(tuple(exclude))
    ]
    daily = (
        features.filter(pl.col("date") <= session)
        .group_by("date")
        .agg([pl.col(c).cast(pl.Float64).fill_nan(None).mean() for c in cols])
        .sort("date")
    )
    today = daily.filter(pl.col("date") == session)
    past = daily.filter(pl.col("date") < session)
    if today.height == 0:
        return True, f"no features for session {session}"
    if past.height < min_history:
        return False, f"only {past.height} earlier sessions: drift not judged"
    worst, worst_z = "", 0.0
    for c in cols:
        hist = past.get_column(c).drop_nulls().to_numpy()
        now = today.get_column(c)[0]
        if now is None or hist.size < min_history:
            continue
        sd = float(hist.std(ddof=1))
        if not sd > 0:
            continue
        z = (float(now) - float(hist.mean())) / sd
        if abs(z) > abs(worst_z):
            worst, worst_z = c, z
    detail = f"largest shift {worst} z={worst_z:+.1f} vs {past.height} sessions" if worst else ""
    return abs(worst_z) > threshold, detail
