"""`python -m trademl_jobs.oracle`: the planted oracle through the CPCV sleeves' gate, on the
market in force (the settings' data source, window and bars), as of the latest session.

Prints the oracle's gate metrics and verdict as JSON: if the planted feature itself cannot
clear a bar, no model can — change the market (names, planted IC, history), not the gate.
Library only (no Dagster run): it builds the features and labels of the training window.
"""

from __future__ import annotations

import argparse
import json
import sys

from trademl.config import load_settings
from trademl.data.calendar import get_calendar
from trademl.data.sources import open_source
from trademl.features import build_features, feature_names, required_history
from trademl.labels import compute_labels
from trademl.models.equities.dataset import build_dataset
from trademl.models.equities.oracle import oracle_verdict
from trademl.validation.cpcv import CombinatorialPurgedCV


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feature", default="mom_20", help="the planted feature (mom_20)")
    args = parser.parse_args(argv)
    s = load_settings()
    cal = get_calendar(s.calendar.exchange, s.data.start)
    latest = cal.latest_completed_session()
    cfg = s.equities
    need = s.train_window + required_history(s.features.ffill_limit) + 40
    window = cal.sessions[max(0, cal.index(latest) - need) : cal.index(latest) + 1]
    bars = open_source(s.data, cal).load(window[0], latest)
    feats = build_features(bars, window, cross_sectional=s.features.cross_sectional)
    labels = compute_labels(bars, window, s.labels)
    train = window[-s.train_window :]
    ds = build_dataset(
        feats.filter(feats["date"] >= train[0]),
        labels.filter(labels["date"] >= train[0]),
        label=cfg.label,
        as_of=latest,
        sessions=cal.sessions,
        feature_names=feature_names(s.features.cross_sectional),
    )
    cv = CombinatorialPurgedCV(
        n_groups=cfg.n_groups, n_test_groups=cfg.n_test_groups, embargo=cfg.embargo
    )
    metrics, decision = oracle_verdict(
        ds,
        cv,
        feature=args.feature,
        baseline_feature=cfg.baseline_feature,
        horizon=s.labels.horizon,
        spread_bps=cfg.spread_bps,
        bars=cfg.promotion,
    )
    market = {"source": s.data.source, "symbols": s.data.symbols, "sessions": len(train)}
    if s.data.source == "synthetic":
        market |= {"alpha": s.data.alpha.mode, "planted_rank_ic": s.data.alpha.target_ic}
    out = {
        "as_of": str(latest),
        "market": market,
        "oracle": args.feature,
        "metrics": metrics,
        "promoted": decision.promote,
        "bars": decision.reasons(),
    }
    print(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
