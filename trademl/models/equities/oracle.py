"""The planted oracle through the CPCV sleeves' gate: is a market strong enough for its
promotion bars to be reachable at all?

The oracle's "prediction" is the planted feature itself (fit-free), laid on the same CPCV
paths a sleeve is judged on; the configurations searched are a family of fit-free siblings
(momentum over 5, 20, 60 and 126 sessions — the planted one among them), so DSR deflates for
that search and PBO asks whether picking the best of them in sample would reliably pick the
planted one. If the oracle cannot clear a bar, no model can: tune the market, not the gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trademl.config import PromotionConfig
from trademl.models.equities.dataset import AlphaDataset
from trademl.models.equities.promotion import Decision, decide
from trademl.validation.cpcv import CombinatorialPurgedCV
from trademl.validation.metrics import ic_by_session, ic_summary
from trademl.validation.paths import path_metrics, selection_stats

__all__ = ["ORACLE_FAMILY", "oracle_verdict"]

#: The fit-free family the oracle is "selected" from; the planted feature is one of them.
ORACLE_FAMILY = ("mom_5", "mom_20", "mom_60", "mom_126")


def oracle_verdict(
    ds: AlphaDataset,
    cv: CombinatorialPurgedCV,
    *,
    feature: str = "mom_20",
    family: Sequence[str] = ORACLE_FAMILY,
    baseline_feature: str = "mom_12_1",
    horizon: int = 5,
    spread_bps: float = 5.0,
    bars: PromotionConfig | None = None,
) -> tuple[dict[str, Any], Decision]:
    """The gate metrics of `feature` as a fit-free model on `ds`'s CPCV paths, and the verdict
    of the CPCV sleeves' bars on them (`bars`, default the code's)."""
    if feature not in family:
        raise ValueError(f"the oracle {feature!r} must be one of its family {list(family)}")
    missing = [c for c in (*family, baseline_feature) if c not in ds.frame.columns]
    if missing:
        raise ValueError(f"the dataset lacks the oracle's columns {missing}")
    runs = {}
    for col in family:
        x = np.nan_to_num(ds.frame.get_column(col).to_numpy(), nan=0.0)
        oof = np.broadcast_to(x, (cv.n_paths, x.size))
        runs[col] = path_metrics(ds.y, ds.session, oof, horizon=horizon, spread_bps=spread_bps)
    m = runs[feature]
    order = np.argsort(m["sharpe_by_path"])
    median_returns = m["returns_by_path"][order[len(order) // 2]]
    trials = [np.mean(np.vstack(runs[c]["returns_by_path"]), axis=0) for c in family]
    selected = selection_stats(median_returns, trials, len(family))
    base = np.nan_to_num(ds.frame.get_column(baseline_feature).to_numpy(), nan=0.0)
    metrics = {
        "oos_rank_ic": m["rank_ic"],
        "path_sharpe_median": m["path_sharpe_median"],
        "max_drawdown": m["max_drawdown"],
        "dsr": selected["dsr"],
        "pbo": selected["pbo"],
        "baseline_rank_ic": ic_summary(ic_by_session(base, ds.y, ds.session))["rank_ic_mean"],
        "family_rank_ic": {c: runs[c]["rank_ic"] for c in family},
    }
    return metrics, decide(metrics, None, bars or PromotionConfig())
