"""The one transaction-cost model shared by the backtest and the order planner.

Every rate is in basis points of notional. A trade pays fees, half the quoted spread, a
square-root market-impact charge and, when filled in an auction, an auction slippage; a short
position pays borrow every session it is held. Functions are vectorized numpy and broadcast
their array arguments, so they price one trade, a trade list, or a (session × symbol) matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CostBreakdown",
    "CostModel",
    "borrow_cost",
    "cost_breakdown",
    "liquidity_tiers",
    "participation",
]

BPS = 1e-4


@dataclass(frozen=True)
class CostModel:
    """Cost parameters; all rates in basis points.

    Parameters
    ----------
    fee_bps
        Commissions and exchange fees, bps of traded notional.
    half_spread_bps
        Half the quoted bid-ask spread, paid on every trade (bps of traded notional).
    impact_coef
        Y in the square-root law: impact = Y·σ_daily·√(Q/ADV) as a fraction of traded notional.
    borrow_bps_tiers
        Annual borrow fee on short notional by liquidity tier; tier 0 is the most liquid
        (cheapest to borrow), the last tier the least liquid. Its length is the number of tiers.
    auction_slippage_bps
        Extra slippage on fills in an opening or closing auction, bps of traded notional.
    unknown_impact_bps
        Impact charged (bps of traded notional) when σ or ADV of a traded name is missing or not
        positive: a conservative flat charge instead of a silent zero.
    days_per_year
        Day count of the borrow fee: one session of borrow costs bps / days_per_year, charged
        once per session a short is held, whatever the calendar days between sessions.
    """

    fee_bps: float = 0.0
    half_spread_bps: float = 5.0
    impact_coef: float = 1.0
    borrow_bps_tiers: tuple[float, ...] = (50.0, 100.0, 200.0)
    auction_slippage_bps: float = 0.0
    unknown_impact_bps: float = 50.0
    days_per_year: float = 252.0

    def __post_init__(self) -> None:
        for name in (
            "fee_bps",
            "half_spread_bps",
            "impact_coef",
            "auction_slippage_bps",
            "unknown_impact_bps",
        ):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"CostModel.{name} must be finite and >= 0, got {v!r}")
        tiers = tuple(float(t) for t in self.borrow_bps_tiers)
        if not tiers or not all(np.isfinite(t) and t >= 0 for t in tiers):
            raise ValueError(
                f"CostModel.borrow_bps_tiers must be a non-empty tuple of finite bps >= 0, "
                f"got {self.borrow_bps_tiers!r}"
            )
        object.__setattr__(self, "borrow_bps_tiers", tiers)
        if not (np.isfinite(self.days_per_year) and self.days_per_year > 0):
            raise ValueError(f"CostModel.days_per_year must be > 0, got {self.days_per_year!r}")

    @property
    def n_tiers(self) -> int:
        """Number of borrow tiers."""
        return len(self.borrow_bps_tiers)

    def linear_bps(self, auction: bool | np.ndarray = False) -> np.ndarray | float:
        """Fee + half spread (+ auction slippage where `auction`), bps of traded notional."""
        base = self.fee_bps + self.half_spread_bps
        return base + self.auction_slippage_bps * np.asarray(auction, dtype=np.float64)

    def impact_rate(self, quantity: np.ndarray, adv: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Square-root impact Y·σ·√(|Q|/ADV) as a fraction of traded notional.

        `quantity` and `adv` must be in the same unit: both shares, or both dollars (the ratio,
        the participation rate, is the same either way at one price). `sigma` is the daily
        return volatility as a fraction (0.02 = 2 %). Where σ or ADV is missing, or ADV is not
        positive, the rate is unknown_impact_bps; it is 0 where the quantity is 0.
        """
        return self.impact_from_participation(participation(quantity, adv), sigma)

    def impact_from_participation(self, part: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Y·|σ|·√part; unknown_impact_bps where part or σ is not finite, 0 where part is 0."""
        part = np.asarray(part, dtype=np.float64)
        factor = np.abs(sigma) if self.impact_coef == 1.0 else self.impact_coef * np.abs(sigma)
        with np.errstate(invalid="ignore"):
            rate = np.asarray(np.sqrt(part) * factor)  # a fresh array, edited in place below
        if rate.size == 0 or np.isfinite(rate.max()):  # max propagates NaN: all finite
            return rate
        bad = ~np.isfinite(rate)
        no_trade = np.broadcast_to(part, rate.shape)[bad] == 0
        rate[bad] = np.where(no_trade, 0.0, self.unknown_impact_bps * BPS)
        return rate

    def borrow_daily_rate(self, tiers: np.ndarray) -> np.ndarray:
        """Borrow fee of one session per unit of short notional for integer `tiers`."""
        tiers = np.asarray(tiers)
        if tiers.size and (tiers.min() < 0 or tiers.max() >= self.n_tiers):
            raise ValueError(
                f"borrow tiers must lie in [0, {self.n_tiers - 1}], got "
                f"[{int(tiers.min())}, {int(tiers.max())}]"
            )
        table = np.asarray(self.borrow_bps_tiers) * BPS / self.days_per_year
        return table[tiers]


def participation(quantity: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """|Q| / ADV (same unit for both): 0 where Q is 0, NaN where a trade has no usable ADV
    (missing, not positive or infinite)."""
    q = np.abs(np.asarray(quantity, dtype=np.float64))
    adv = np.asarray(adv, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        part = np.asarray(q / adv)
        if adv.size and adv.min() > 0 and adv.max() < np.inf:  # NaN fails both: all usable
            return part
        bad = ~(np.isfinite(adv) & (adv > 0))
    bad = np.broadcast_to(bad, part.shape) & np.broadcast_to(q != 0, part.shape)
    part[bad] = np.nan
    part[np.broadcast_to(q == 0, part.shape)] = 0.0
    return part


@dataclass(frozen=True)
class CostBreakdown:
    """Per-trade costs in the unit of the notional passed in (dollars, or fractions of a book).

    All arrays share the broadcast shape of the inputs. participation = |Q|/ADV: 0 without a
    trade, NaN for a trade whose ADV is missing or not positive.
    """

    fee: np.ndarray
    spread: np.ndarray
    impact: np.ndarray
    auction: np.ndarray
    total: np.ndarray
    participation: np.ndarray


def cost_breakdown(
    model: CostModel,
    notional: np.ndarray,
    quantity: np.ndarray,
    adv: np.ndarray,
    sigma: np.ndarray,
    *,
    auction: bool | np.ndarray = False,
    reduce_axis: int | None = None,
) -> CostBreakdown:
    """Fee, spread, impact and auction cost of each trade, vectorized.

    Parameters
    ----------
    notional
        Traded notional (sign ignored): the cost outputs are in its unit.
    quantity, adv
        Traded quantity and average daily volume, in the same unit (shares or dollars).
    sigma
        Daily return volatility, a fraction.
    auction
        True (scalar or per trade) where the fill is in an opening/closing auction.
    reduce_axis
        When given, fee, spread, impact, auction and total are summed along this axis (e.g.
        per session over a sessions × symbols block, as the backtest does) without forming the
        per-trade arrays of the linear terms; participation stays per trade.
    """
    n = np.abs(np.asarray(notional, dtype=np.float64))
    q = np.asarray(quantity, dtype=np.float64)
    part = participation(q, adv)
    rate = model.impact_from_participation(part, sigma)
    shape = np.broadcast_shapes(n.shape, q.shape, part.shape, np.shape(sigma), np.shape(auction))
    part = np.broadcast_to(part, shape)
    flag = np.asarray(auction, dtype=np.float64)
    lin = {"fee": model.fee_bps * BPS, "spread": model.half_spread_bps * BPS}
    auc_rate = model.auction_slippage_bps * BPS
    if reduce_axis is None:
        out = {k: np.broadcast_to(n * r, shape) for k, r in lin.items()}
        out["impact"] = np.broadcast_to(n * rate, shape)
        out["auction"] = np.broadcast_to(n * (auc_rate * flag), shape)
    else:
        n_b = np.broadcast_to(n, shape)
        n_sum = n_b.sum(axis=reduce_axis)
        out = {k: n_sum * r for k, r in lin.items()}
        out["impact"] = (n_b * rate).sum(axis=reduce_axis)
        out["auction"] = (
            n_sum * (auc_rate * float(flag))
            if flag.ndim == 0
            else (n_b * flag).sum(axis=reduce_axis) * auc_rate
        )
    total = out["fee"] + out["spread"] + out["impact"] + out["auction"]
    return CostBreakdown(total=total, participation=part, **out)


def borrow_cost(model: CostModel, short_notional: np.ndarray, tiers: np.ndarray) -> np.ndarray:
    """One session of borrow on `short_notional` (sign ignored; 0 for longs) by tier."""
    s = np.abs(np.asarray(short_notional, dtype=np.float64))
    return s * model.borrow_daily_rate(tiers)


def liquidity_tiers(adv: np.ndarray, n_tiers: int = 3) -> np.ndarray:
    """Liquidity tier (small ints) of each name: 0 for the most liquid 1/n_tiers, n_tiers−1 for
    the least.

    `adv` is 1-D (one session) or 2-D (sessions × symbols, tiers per row); use dollar ADV so
    names compare across prices. Among the k names of a row with finite positive ADV, the one
    of ascending rank r (0-based) gets bucket ⌊r·n_tiers/k⌋ and tier n_tiers−1−bucket; tied
    ADVs all go to the more liquid tier. Names without a usable ADV get the last tier (least
    liquid, dearest to borrow). One sort per row, vectorized over rows.
    """
    if n_tiers < 1:
        raise ValueError(f"n_tiers must be >= 1, got {n_tiers}")
    a = np.asarray(adv, dtype=np.float64)
    one_d = a.ndim == 1
    a2 = a[None, :] if one_d else a
    if a2.ndim != 2:
        raise ValueError("adv must be 1-D or 2-D")
    dtype = np.int8 if n_tiers < 128 else np.int64
    if a2.shape[1] == 0:
        return np.zeros(a.shape, dtype=dtype)
    ok = np.isfinite(a2)
    ok &= a2 > 0
    all_ok = bool(ok.all())
    clean = a2 if all_ok else np.where(ok, a2, np.nan)
    srt = np.sort(clean, axis=1)  # NaN last
    k = np.full(a2.shape[0], a2.shape[1]) if all_ok else ok.sum(axis=1)
    tier = np.full(a2.shape, n_tiers - 1, dtype=dtype)
    rows = np.arange(a2.shape[0])
    for j in range(1, n_tiers):
        b = -(-(j * k) // n_tiers)  # ceil(j·k/n_tiers): first rank of bucket j
        thr = np.where(b < k, srt[rows, np.minimum(b, a2.shape[1] - 1)], np.inf)
        with np.errstate(invalid="ignore"):
            tier -= clean >= thr[:, None]  # NaN compares False: stays in the last tier
    return tier[0] if one_d else tier
