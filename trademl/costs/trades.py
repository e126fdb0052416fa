"""Per-name cost breakdown of a trade list (the order planner's view of `cost_breakdown`)."""

from __future__ import annotations

import numpy as np
import polars as pl

from trademl.costs.model import BPS, CostModel, cost_breakdown

__all__ = ["TRADE_COLUMNS", "trade_costs"]

#: Required columns of a trade list and what they hold.
TRADE_COLUMNS: dict[str, str] = {
    "symbol": "ticker",
    "notional": "signed traded dollars (buy > 0, sell < 0)",
    "shares": "signed traded shares",
    "adv": "average daily volume in shares",
    "sigma": "daily return volatility, a fraction",
}


def trade_costs(
    trades: pl.DataFrame, model: CostModel, *, auction: bool | str = False
) -> pl.DataFrame:
    """Cost of each trade in dollars: fee, spread, impact, auction, total, and total in bps.

    `trades` holds TRADE_COLUMNS; `auction` is a bool for the whole list or the name of a
    boolean column marking auction fills. Participation = |shares| / adv. Impact uses shares
    against ADV in shares; a missing σ or ADV is charged model.unknown_impact_bps. Rows keep
    their input order. Raises ValueError naming a missing column or a non-finite notional.
    """
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if isinstance(auction, str) and auction not in trades.columns:
        missing.append(auction)
    if missing:
        raise ValueError(f"trade list is missing column(s) {missing}; expected {TRADE_COLUMNS}")
    cols = {
        c: trades.get_column(c).cast(pl.Float64).to_numpy() for c in TRADE_COLUMNS if c != "symbol"
    }
    for c in ("notional", "shares"):
        bad = ~np.isfinite(cols[c])
        if bad.any():
            sym = trades.get_column("symbol")[int(np.flatnonzero(bad)[0])]
            raise ValueError(f"trade list column {c!r} is not finite for symbol {sym!r}")
    flag: bool | np.ndarray = (
        trades.get_column(auction).fill_null(False).cast(pl.Boolean).to_numpy()
        if isinstance(auction, str)
        else bool(auction)
    )
    cb = cost_breakdown(
        model, cols["notional"], cols["shares"], cols["adv"], cols["sigma"], auction=flag
    )
    notional = np.abs(cols["notional"])
    with np.errstate(invalid="ignore", divide="ignore"):
        total_bps = np.where(notional > 0, cb.total / notional / BPS, 0.0)
    return pl.DataFrame(
        {
            "symbol": trades.get_column("symbol"),
            "notional": cols["notional"],
            "shares": cols["shares"],
            "participation": cb.participation,
            "fee": cb.fee,
            "spread": cb.spread,
            "impact": cb.impact,
            "auction": cb.auction,
            "total": cb.total,
            "total_bps": total_bps,
        }
    )
