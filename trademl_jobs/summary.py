"""What `make demo` prints: per sleeve its version and verdict (promoted, or which bars failed
and by how much), how the session's book was served and sized, the backtest, the shadow
books, the orders — and one sentence saying whether models chose the trades."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from resources.lake import Lake
from trademl.config import Settings
from trademl.models.equities.pipeline import CPCV_SCALARS

#: The headline metrics of each kind of sleeve in the summary.
HEADLINE = {
    # CPCV sleeves, the forecasts' t-stat, the thesis model's walk-forward SFT vs RFT
    "alpha": (
        *CPCV_SCALARS[:6],
        "rank_ic_t_stat",
        "sft_sharpe",
        "rft_sharpe",
        "rft_validity",
    ),
    "stacker": ("oos_rank_ic", "best_sleeve_rank_ic", "equal_weight_rank_ic", "dsr", "pbo"),
    "sizing": (
        "sharpe_sized",
        "sharpe_unsized",
        "improvement_t",
        "mean_size",
        # offline RL: the OPE verdict with its interval, and the replay vs the traded book
        "ope_dr",
        "ope_dr_lo",
        "ope_dr_hi",
        "ope_behaviour",
        "replay_improvement_t",
        "mean_bucket",
    ),
}


def _num(v: Any) -> Any:
    return round(float(v), 4) if isinstance(v, float) and math.isfinite(v) else v


def _sleeve(lake: Lake, key: str, latest: str, kind: str) -> dict[str, Any]:
    """A model asset's row of the latest session: version, verdict and headline metrics."""
    if latest not in lake.partitions(key):
        return {"version": None, "promoted": False, "why": "not trained"}
    row = lake.scan(key, [latest]).collect().row(0, named=True)
    out = {
        "version": row["version"],
        "promoted": bool(row["passed_gate"]),
        "why": row["verdict"],
        **{k: _num(row[k]) for k in HEADLINE[kind] if k in row and row[k] is not None},
    }
    info = json.loads(row.get("info") or "{}")
    if info.get("sleeves"):
        out["sleeves"] = info["sleeves"]
    return out


def _verdict(served: Mapping[str, Any], promoted: list[str], orders: int, s: Settings) -> str:
    if served.get("path") == "fit_free":
        feature = s.portfolio.fallback_feature or "none (no positions)"
        return (
            "No model earned its place: every gate refused (see each sleeve's 'why'), so the "
            f"book trades the fit-free fallback feature {feature}, not a model."
        )
    models = ", ".join(f"{k} v{v}" for k, v in sorted(served.get("models", {}).items()))
    return (
        f"Promoted: {', '.join(promoted) or 'none today'}. The book is served by "
        f"{served.get('path')} ({models}), sized by {served.get('sizer')}: {orders} orders "
        "come from models that earned their place."
    )


def pipeline_summary(
    lake: Lake,
    s: Settings,
    latest: str,
    window: list[str],
    runs: Mapping[str, dg.ExecuteInProcessResult | None],
) -> dict[str, Any]:
    """The demo's JSON summary of the latest session (read back from the lake)."""
    from trademl_assets.registry import ALPHA, SIZING, STACKER

    feats = lake.scan("features", [latest]).collect()
    qc = {e.check_name: e for e in runs["history"].get_asset_check_evaluations()}.get("quality")
    sleeves = {sp.name: _sleeve(lake, sp.model_key, latest, "alpha") for sp in ALPHA}
    if STACKER is not None:
        sleeves["stacker"] = _sleeve(lake, STACKER.model_key, latest, "stacker")
    for sp in SIZING:
        sleeves[sp.name] = _sleeve(lake, sp.model_key, latest, "sizing")
    weights = lake.scan("sized_weights", [latest]).collect()
    first = weights.row(0, named=True) if weights.height else {}
    served = {
        "path": first.get("source"),
        "models": json.loads(first.get("models") or "{}"),
        "sizer": first.get("sizer"),
        "n_trials": first.get("n_trials"),
    }
    bt = lake.scan("backtest", [latest]).collect()
    orders = lake.scan("orders", [latest]).collect()
    shadow = lake.scan("shadow_books", [latest]).collect()
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in runs["trade"].get_asset_materialization_events()
    }
    halts = meta.get("orders", {}).get("halt_reasons")
    promoted = [f"{k} v{v['version']}" for k, v in sleeves.items() if v["promoted"]]
    summary = {
        "session": latest,
        "market": {
            "source": s.data.source,
            "symbols": s.data.symbols if isinstance(s.data.symbols, int) else len(s.data.symbols),
            **(
                {"alpha": s.data.alpha.mode, "planted_rank_ic": s.data.alpha.target_ic}
                if s.data.source == "synthetic"
                else {}
            ),
        },
        "bars_rows": lake.scan("bars", [latest]).select(pl.len()).collect().item(),
        "feature_rows": feats.height,
        "features": len(feats.columns) - 2,
        "label_rows": lake.scan("labels", window).select(pl.len()).collect().item(),
        "training": {
            "setting": str(s.equities.train_sessions),
            "sessions": len(window),
            "first": window[0],
            "last": window[-1],
        },
        "qc": qc.metadata["status"].value if qc else "not run",
        "qc_detail": qc.description if qc else "",
        "sleeves": sleeves,
        "oos_signals_rows": lake.scan("oos_signals", window).select(pl.len()).collect().item(),
        "served": served,
        "portfolio": {
            "longs": int((weights.get_column("weight") > 0).sum()),
            "shorts": int((weights.get_column("weight") < 0).sum()),
            "gross": float(weights.get_column("weight").abs().sum()),
            "mean_size": float(weights.get_column("size").mean()) if weights.height else None,
        },
        "backtest": {
            "sessions": bt.height,
            "net_return": float(bt.get_column("equity")[-1] - 1.0) if bt.height else None,
            "benchmark_return": float(bt.get_column("benchmark_equity")[-1] - 1.0)
            if bt.height
            else None,
            "sessions_by_source": json.loads(bt.get_column("sessions_by_source")[-1])
            if bt.height
            else {},
        },
        "shadow_books": [
            {k: _num(v) for k, v in r.items() if k in ("book", "role", "sessions", "net_return")}
            for r in shadow.iter_rows(named=True)
        ],
        "report": lake.scan("daily_report", [latest]).collect().item(0, "report_md"),
        "orders": {
            "count": orders.height,
            "status": dict(orders.group_by("status").len().iter_rows()),
            "halted_because": halts.value if halts is not None else [],
        },
        "blotter_rows": lake.scan("blotter", [latest]).select(pl.len()).collect().item(),
    }
    summary["verdict"] = _verdict(served, promoted, orders.height, s)
    return summary
