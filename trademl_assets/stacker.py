"""The stacker sleeve: a meta-model over the out-of-fold predictions of the alpha sleeves whose
snapshot as of the session passed its gate; its own nested out-of-sample record is judged
against the best single sleeve's."""

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from trademl.config import Settings
from trademl.models.sleeve import NotTrainable, Trained
from trademl.models.stacker.model import StackerModel
from trademl.models.stacker.promotion import decide
from trademl.models.stacker.train import SleeveOOF, oof_columns, train_stacker
from trademl.validation.layout import SplitLayout
from trademl_assets.partitions import CALENDAR
from trademl_assets.sleeves import SleeveSpec

ROW_METRICS = (
    "oos_rank_ic",
    "rank_ic_mean",
    "path_sharpe_median",
    "max_drawdown",
    "dsr",
    "pbo",
    "equal_weight_rank_ic",
    "best_sleeve_rank_ic",
    "best_sleeve_pbo",
    "best_sleeve_dsr",
)


def sleeve_oof(name: str, frame: pl.DataFrame) -> SleeveOOF:
    """One sleeve's OOF partition (as written by its model asset) as a `SleeveOOF`."""
    first = frame.row(0, named=True)
    keep = ["date", "symbol", *(c for c in ("t1", "y") if c in frame.columns)]
    return SleeveOOF(
        name=name,
        frame=frame.select(*keep, *oof_columns(frame)),
        layout=SplitLayout.from_dict(json.loads(first["layout"])),
        version=str(first["version"]),
        n_trials=int(first["n_trials"]),
        metrics={"pbo": first["sleeve_pbo"], "dsr": first["sleeve_dsr"]},
    )


def train(inputs: Mapping[str, Any], as_of: dt.date, s: Settings, log: Any) -> Trained:
    """Stack the configured sleeves whose snapshot as of `as_of` passed its gate."""
    oofs, skipped = {}, []
    for key, lf in sorted(inputs.items()):
        name = key.removesuffix("_oof")
        frame = lf.filter(pl.col("as_of") == as_of).collect()
        if frame.height == 0:
            skipped.append(f"{name} (no OOF as of {as_of})")
        elif not frame.get_column("passed_gate")[0]:
            skipped.append(f"{name} v{frame.get_column('version')[0]} (refused)")
        else:
            oofs[name] = sleeve_oof(name, frame)
    if skipped:
        log(f"stacker as of {as_of}: left out {', '.join(skipped)}")
    if len(oofs) < 2:
        raise NotTrainable(
            f"{len(oofs)} sleeve(s) passed their gates as of {as_of} ({', '.join(oofs) or 'none'}"
            f"; left out: {', '.join(skipped) or 'none'}): a stacker needs at least two"
        )
    cfg = s.stacker
    fit = train_stacker(
        oofs,
        sessions=CALENDAR.sessions,
        method=cfg.method,
        ridge_alpha=cfg.ridge_alpha,
        lgbm_trees=cfg.lgbm_trees,
        horizon=s.labels.horizon,
        spread_bps=s.equities.spread_bps,
        seed=s.data.seed,
        progress=log,
    )
    metrics = {k: v for k, v in fit.metrics.items() if isinstance(v, int | float)}
    return Trained(
        metrics=metrics,
        params={
            "method": cfg.method,
            "sleeves": ",".join(fit.model.sleeves),
            "versions": json.dumps(fit.model.info["versions"], sort_keys=True),
            "layout": fit.layout.fingerprint,
        },
        save=fit.model.save,
        fingerprint=fit.oof.select("date", "symbol", "y"),
        n_trials=fit.n_trials,
        figures={"plots/rank_ic_vs_sleeves.png": _ic_plot(fit.metrics, fit.sleeve_metrics)},
        tables={"oof/stacker_oof.parquet": fit.oof, "weights/by_split.parquet": fit.split_weights},
        documents={"sleeves.json": fit.sleeve_metrics},
        info={
            "sleeves": ",".join(fit.model.sleeves),
            "best_sleeve": fit.metrics["best_sleeve"],
            "versions": json.dumps(fit.model.info["versions"], sort_keys=True),
        },
    )


def _ic_plot(metrics: Mapping[str, Any], sleeves: Mapping[str, Mapping[str, float]]) -> Any:
    """Median-path OOS rank IC of each sleeve, the equal blend and the stacker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*sorted(sleeves), "equal weight", "stacker"]
    values = [sleeves[n]["rank_ic_median_path"] for n in sorted(sleeves)]
    values += [metrics["equal_weight_rank_ic"], metrics["oos_rank_ic"]]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.bar(names, values, color=["#888"] * len(sleeves) + ["#69c", "#2a7"])
    ax.set_ylabel("median-path OOS rank IC")
    ax.set_title("Stacker vs its sleeves (same rows, same paths)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig


def spec(sleeves: list[str]) -> SleeveSpec:
    """The stacker over the OOF tables of `sleeves` (the configured ones that exist)."""
    return SleeveSpec(
        name="stacker",
        kind="stacker",
        group="stacker",
        ins={f"{n}_oof": dg.AssetIn(f"{n}_oof") for n in sleeves},
        train=train,
        decide=lambda m, champ, s: decide(m, champ, s.stacker.promotion),
        min_shadow=lambda s: s.stacker.promotion.min_shadow_sessions,
        gate_description="Median-path OOS rank IC above the best single sleeve's (same rows "
        "and paths) by stacker.promotion.ic_margin_vs_best_sleeve; PBO and DSR no worse than "
        "that sleeve's (or within max_pbo / min_dsr); above the stacker champion's as of the "
        "session. NaN fails closed; fewer than two passed sleeves: nothing to stack.",
        load=lambda d: StackerModel.load(Path(d)),
        description="The stacker as of the session: NNLS (or positive ridge / monotone GBM) "
        "over the OOF of the sleeves that passed their gates, fit only on OOF rows, with a "
        "nested out-of-sample record on the same session groups; registered as `stacker`.",
        row_metrics=ROW_METRICS,
        kinds=frozenset({"scipy", "mlflow"}),
    )
