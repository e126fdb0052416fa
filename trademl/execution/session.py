"""One session's execution inputs: Almgren–Chriss parameters per name, the slice schedule of
the plan, and a feature-drift flag for the tripwires."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from trademl.execution.orders import MAX_CLIENT_ORDER_ID, Order
from trademl.execution.schedule import ACParams, ac_kappa, integer_slices

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
    TWAP otherwise (or when `method` is "twap"). One row per child with its send time.

    The same children as `slice_order` on each parent (tested), computed for all parents at
    once: a day's ~2,000 parents in one array pass rather than one schedule object each.
    """
    if not 1 <= n_slices <= 99:
        raise ValueError(f"n_slices must be in 1..99, got {n_slices}")
    if end <= start:
        raise ValueError(f"slice window: end {end} <= start {start}")
    horizon, n = 1.0, n_slices
    tau = horizon / n
    kappa = np.full(len(orders), np.nan)
    for i, o in enumerate(orders):
        sigma, adv = risk.get(o.symbol, (math.nan, math.nan))
        ok = method == "almgren_chriss" and np.isfinite([sigma, adv, o.ref_price]).all()
        if ok and adv > 0 and o.ref_price > 0 and sigma >= 0:
            params = ac_params(
                o.ref_price,
                sigma,
                adv,
                half_spread_bps=half_spread_bps,
                fee_bps=fee_bps,
                risk_aversion=risk_aversion,
            )
            kappa[i] = ac_kappa(params, tau)
        if len(o.client_order_id) + 3 > MAX_CLIENT_ORDER_ID:
            raise ValueError(
                f"child ids of {o.client_order_id!r} would be {len(o.client_order_id) + 3} "
                f"characters (limit {MAX_CLIENT_ORDER_ID}); shorten the parent id"
            )
    shares = np.array([float(o.qty) for o in orders])
    trades = integer_slices(_holdings(shares, kappa, horizon, n))
    rows, cols = np.nonzero(trades > 0)  # parent by parent, slices in order
    step = (end - start) / n
    at = [(start + step * j).isoformat(timespec="minutes") for j in range(n)]
    parent = [orders[i].client_order_id for i in rows]
    return pl.DataFrame(
        {
            "parent_id": parent,
            "client_order_id": [f"{p}-{j + 1:02d}" for p, j in zip(parent, cols, strict=True)],
            "symbol": [orders[i].symbol for i in rows],
            "side": [orders[i].side for i in rows],
            "slice": cols + 1,
            "at": [at[j] for j in cols],
            "qty": trades[rows, cols],
            "method": np.where(np.isnan(kappa[rows]), "twap", "almgren_chriss"),
        },
        schema={
            "parent_id": pl.String,
            "client_order_id": pl.String,
            "symbol": pl.String,
            "side": pl.String,
            "slice": pl.Int64,
            "at": pl.String,
            "qty": pl.Int64,
            "method": pl.String,
        },
    )


def _holdings(shares: np.ndarray, kappa: np.ndarray, horizon: float, n: int) -> np.ndarray:
    """[parents, n + 1] holdings: `almgren_chriss` where kappa is known, `twap` where NaN
    (the same operations, element by element, as those functions)."""
    times = np.arange(n + 1) * (horizon / n)
    times[-1] = horizon
    out = shares[:, None] * (n - np.arange(n + 1))[None, :] / n  # TWAP
    ac = ~np.isnan(kappa)
    flat = ac & (kappa * horizon < 1e-12)
    out[flat] = shares[flat, None] * ((horizon - times) / horizon)[None, :]
    curved = ac & ~flat
    if curved.any():
        a = kappa[curved, None] * (horizon - times)[None, :]
        b = kappa[curved] * horizon
        below = np.array([-math.expm1(-2 * x) for x in b])  # as `_sinh_ratio`: math.expm1
        frac = np.exp(a - b[:, None]) * (-np.expm1(-2 * a)) / below[:, None]
        out[curved] = shares[curved, None] * frac
    out[ac, 0], out[ac, -1] = shares[ac], 0.0
    return out


def feature_drift(
    features: pl.DataFrame,
    session: dt.date,
    *,
    threshold: float,
    min_history: int = 20,
    exclude: Sequence[str] = DRIFT_EXCLUDE,
) -> tuple[bool, str]:
    """Does the session's cross-section of features look unlike its trailing history?

    Per feature and session two statistics: the share of missing values and the log of the
    cross-sectional std (dispersion). Each is z-scored against the earlier sessions (std
    floored at 0.01, so a feature that never had gaps flags when a tenth of it goes missing).
    Flags when any |z| > threshold; the detail names the worst. A market-wide move shifts a
    feature's cross-sectional mean, not its dispersion or coverage, so it does not flag: this
    watches for broken data (units, scale, coverage), not for regimes. Uses only sessions ≤
    `session`; fewer than `min_history` earlier sessions cannot judge and do not flag.
    """
    cols = [
        c
        for c in features.columns
        if c not in ("date", "symbol") and not c.startswith(tuple(exclude))
    ]
    stats = []
    for c in cols:
        x = pl.col(c).cast(pl.Float64).fill_nan(None)
        stats += [
            x.is_null().mean().alias(f"{c}|missing share"),
            x.std().log().alias(f"{c}|log dispersion"),
        ]
    daily = features.filter(pl.col("date") <= session).group_by("date").agg(stats).sort("date")
    today = daily.filter(pl.col("date") == session)
    past = daily.filter(pl.col("date") < session)
    if today.height == 0:
        return True, f"no features for session {session}"
    if past.height < min_history:
        return False, f"only {past.height} earlier sessions: drift not judged"
    worst, worst_z = "", 0.0
    for stat in daily.columns[1:]:
        hist = past.get_column(stat).to_numpy().astype(np.float64)
        hist = hist[np.isfinite(hist)]
        now = today.get_column(stat)[0]
        if now is None or not np.isfinite(now) or hist.size < min_history:
            continue
        z = (float(now) - float(hist.mean())) / max(float(hist.std(ddof=1)), 0.01)
        if abs(z) > abs(worst_z):
            worst, worst_z = stat, z
    name, what = worst.split("|") if worst else ("", "")
    detail = f"largest shift: {name} {what} z={worst_z:+.1f} vs {past.height} sessions"
    return abs(worst_z) > threshold, detail if worst else ""
