"""Training the stacker on the alpha sleeves' out-of-fold (OOF) predictions only.

1. Align: every sleeve's OOF rows on one split layout (`common_layout`); the CPCV sleeves'
   rows (date, symbol, label end t1, label y) are the base, a walk-forward sleeve joins them.
2. Normalize each sleeve's prediction per session and per CPCV path (`xs_zscore`), and the
   label too (the fit's target).
3. Its own out-of-sample record, on the same session groups: for each path and each group g,
   the weights are fit on the OTHER groups' rows (purged of label overlap with g and
   embargoed after it, as CPCV does) and predict g. Never a refit model's in-sample output.
4. The weights it serves are fit on every OOF row of every path.

The gate reads the record's median-path rank IC against the best single sleeve's on the same
rows and paths, and PBO/DSR over the candidates a researcher would choose among (each sleeve,
the equal-weight blend, the stacker), deflated for every configuration tried to get here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from trademl.models.stacker.combiners import Gram, Method, MonotoneGBM, fit_linear, gram
from trademl.models.stacker.model import StackerModel
from trademl.models.stacker.normalize import session_codes, xs_zscore
from trademl.validation.cpcv import CombinatorialPurgedCV, session_ordinals
from trademl.validation.layout import LayoutMismatch, SplitLayout, common_layout
from trademl.validation.paths import path_metrics, selection_stats

__all__ = ["SleeveOOF", "StackerFit", "align_oof", "oof_columns", "train_stacker"]

#: Configurations the stacker itself adds to the trials behind its score (equal blend, fit).
STACKER_CANDIDATES = 2


@dataclass(frozen=True)
class SleeveOOF:
    """One sleeve's published OOF: rows (date, symbol, oof_path_0…; CPCV sleeves also t1 and
    y), the layout that produced them, and its recorded version, trials and gate metrics."""

    name: str
    frame: pl.DataFrame
    layout: SplitLayout
    version: str = ""
    n_trials: int = 1
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass
class StackerFit:
    """What one stacker training produced: the served model, gate metrics, per-sleeve
    metrics on the aligned rows, per-split weights and its own OOF record."""

    model: StackerModel
    metrics: dict[str, Any]
    sleeve_metrics: dict[str, dict[str, float]]
    split_weights: pl.DataFrame
    oof: pl.DataFrame
    layout: SplitLayout
    n_trials: int


def oof_columns(frame: pl.DataFrame) -> list[str]:
    """The `oof_path_<p>` columns of an OOF frame, in path order."""
    cols = [c for c in frame.columns if c.startswith("oof_path_")]
    return sorted(cols, key=lambda c: int(c.rsplit("_", 1)[1]))


def align_oof(oofs: Mapping[str, SleeveOOF]) -> tuple[pl.DataFrame, SplitLayout, dict[str, int]]:
    """One frame (date, symbol, t1, y, `<sleeve>__p<k>`…) over the CPCV rows, the common
    layout, and each sleeve's number of paths. Raises LayoutMismatch naming the sleeves."""
    layout = common_layout({k: v.layout for k, v in oofs.items()})
    cpcv = sorted(k for k, v in oofs.items() if v.layout.kind == "cpcv")
    keys = ["date", "symbol"]
    base = oofs[cpcv[0]].frame.select(*keys, "t1", "y").sort(keys)
    paths: dict[str, int] = {}
    out = base
    for name in sorted(oofs):
        o = oofs[name]
        cols = oof_columns(o.frame)
        if not cols:
            raise ValueError(f"OOF of {name} has no oof_path_<p> columns")
        paths[name] = len(cols)
        part = o.frame.select(
            *keys, *[pl.col(c).alias(f"{name}__p{i}") for i, c in enumerate(cols)]
        )
        if o.layout.kind == "cpcv":
            part = part.sort(keys)
            if part.height != base.height or not part.select(keys).equals(base.select(keys)):
                raise LayoutMismatch(
                    f"OOF of {cpcv[0]} and {name} share a layout but not their rows "
                    f"({base.height} vs {part.height}): train both on the same features and "
                    "labels as of the same session"
                )
            out = out.hstack(part.drop(keys))  # the same rows in the same order: no join
        else:
            out = out.join(part, on=keys, how="left", maintain_order="left")
    return out, layout, paths


def _check_groups(
    cv: CombinatorialPurgedCV, frame: pl.DataFrame, layout: SplitLayout, session: np.ndarray
) -> None:
    days = frame.get_column("date").to_numpy()
    uniq, first = np.unique(session, return_index=True)
    chunks = np.array_split(np.arange(uniq.size), cv.n_groups)
    bounds = tuple(
        (
            str(days[first[c[0]]].astype("datetime64[D]")),
            str(days[first[c[-1]]].astype("datetime64[D]")),
        )
        for c in chunks
    )
    if bounds != layout.groups:
        raise LayoutMismatch(
            f"the aligned OOF rows form groups {bounds[:2]}… but the sleeves' layout has "
            f"{layout.groups[:2]}…: rows are missing from the OOF"
        )


def _z_paths(
    frame: pl.DataFrame,
    sleeves: Sequence[str],
    paths: Mapping[str, int],
    codes: np.ndarray,
    n_paths: int,
) -> np.ndarray:
    """[n_paths, n_rows, n_sleeves] normalized predictions (a 1-path sleeve on every path)."""
    z = np.empty((n_paths, frame.height, len(sleeves)))
    for j, s in enumerate(sleeves):
        cache: dict[int, np.ndarray] = {}
        for p in range(n_paths):
            k = min(p, paths[s] - 1)
            if k not in cache:
                cache[k] = xs_zscore(frame.get_column(f"{s}__p{k}").to_numpy(), codes)
            z[p, :, j] = cache[k]
    return z


def train_stacker(
    oofs: Mapping[str, SleeveOOF],
    *,
    sessions: Sequence[dt.date],
    method: Method = "nnls",
    ridge_alpha: float = 0.1,
    lgbm_trees: int = 50,
    horizon: int = 5,
    spread_bps: float = 5.0,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> StackerFit:
    """Fit the stacker over `oofs` (≥ 2 sleeves) and its nested out-of-sample record.

    `sessions` is the exchange calendar (ordinals for purging and embargo).
    """
    if len(oofs) < 2:
        raise ValueError(f"a stacker needs at least 2 sleeves, got {sorted(oofs)}")
    frame, layout, paths = align_oof(oofs)
    sleeves = tuple(sorted(oofs))
    session = session_ordinals(frame.get_column("date"), sessions)
    t1 = session_ordinals(frame.get_column("t1"), sessions)
    codes = session_codes(frame.get_column("date"))
    y = frame.get_column("y").to_numpy()
    target = xs_zscore(y, codes)
    cv = CombinatorialPurgedCV(n_groups=len(layout.groups), n_test_groups=1, embargo=layout.embargo)
    _check_groups(cv, frame, layout, session)
    n_paths = layout.n_paths
    z = _z_paths(frame, sleeves, paths, codes, n_paths)
    splits = list(cv.split(session, t1))
    pred = np.empty((n_paths, frame.height))
    weight_rows: list[dict[str, Any]] = []
    total = Gram(np.zeros((len(sleeves),) * 2), np.zeros(len(sleeves)), 0.0)
    for p in range(n_paths):
        zp = z[p]
        full = gram(zp, target)
        total = total + full
        for g, (train, test) in enumerate(splits):
            if method == "lgbm_monotone":
                gbm = MonotoneGBM(trees=lgbm_trees, seed=seed).fit(zp[train], target[train])
                pred[p, test] = gbm.predict(zp[test])
                continue
            keep = np.ones(frame.height, dtype=bool)
            keep[train] = False
            w = fit_linear(
                full - gram(zp[keep], target[keep]), method=method, ridge_alpha=ridge_alpha
            )
            pred[p, test] = zp[test] @ w
            weight_rows += [
                {"path": p, "group": g, "sleeve": s, "weight": float(w[j])}
                for j, s in enumerate(sleeves)
            ]
        if progress:
            progress(f"path {p + 1}/{n_paths}: {len(splits)} groups fit out of sample")
    if method == "lgbm_monotone":
        model = StackerModel(
            sleeves,
            method,
            gbm=MonotoneGBM(trees=lgbm_trees, seed=seed).fit(z.mean(axis=0), target),
        )
    else:
        model = StackerModel(
            sleeves, method, weights=fit_linear(total, method=method, ridge_alpha=ridge_alpha)
        )
    metrics, sleeve_metrics = _judge(
        oofs, sleeves, frame, paths, z, pred, y, session, horizon, spread_bps
    )
    n_trials = sum(max(1, o.n_trials) for o in oofs.values()) + STACKER_CANDIDATES
    model.info = {
        "layout": layout.fingerprint,
        "n_trials": n_trials,
        "versions": {k: o.version for k, o in oofs.items()},
    }
    metrics |= {f"weight_{s}": w for s, w in model.weight_map.items()}
    metrics["n_trials"] = n_trials
    metrics["n_rows"] = frame.height
    oof = frame.select("date", "symbol", "t1", "y").with_columns(
        pl.Series("oof", pred.mean(axis=0)),
        *[pl.Series(f"oof_path_{p}", pred[p]) for p in range(n_paths)],
    )
    return StackerFit(
        model=model,
        metrics=metrics,
        sleeve_metrics=sleeve_metrics,
        split_weights=pl.DataFrame(
            weight_rows,
            schema={"path": pl.Int64, "group": pl.Int64, "sleeve": pl.String, "weight": pl.Float64},
        ),
        oof=oof,
        layout=layout,
        n_trials=n_trials,
    )


def _judge(
    oofs: Mapping[str, SleeveOOF],
    sleeves: Sequence[str],
    frame: pl.DataFrame,
    paths: Mapping[str, int],
    z: np.ndarray,
    pred: np.ndarray,
    y: np.ndarray,
    session: np.ndarray,
    horizon: int,
    spread_bps: float,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Gate metrics of the stacker's record and of every sleeve on the same rows and paths."""

    def pm(oof: np.ndarray) -> dict[str, Any]:
        return path_metrics(y, session, oof, horizon=horizon, spread_bps=spread_bps)

    runs = {
        s: np.vstack([frame.get_column(f"{s}__p{k}").to_numpy() for k in range(paths[s])])
        for s in sleeves
    }
    runs |= {"__stacker": pred, "__equal": z.mean(axis=2)}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the row sorts release the GIL
        done = dict(zip(runs, pool.map(pm, runs.values()), strict=True))
    per_sleeve = {s: done[s] for s in sleeves}
    stack, equal = done["__stacker"], done["__equal"]
    candidates = [np.mean(np.vstack(per_sleeve[s]["returns_by_path"]), axis=0) for s in sleeves]
    candidates += [
        np.mean(np.vstack(equal["returns_by_path"]), axis=0),
        np.mean(np.vstack(stack["returns_by_path"]), axis=0),
    ]
    order = np.argsort(stack["sharpe_by_path"])
    median_returns = stack["returns_by_path"][order[len(order) // 2]]
    n_trials = sum(max(1, o.n_trials) for o in oofs.values()) + STACKER_CANDIDATES
    selected = selection_stats(median_returns, candidates, n_trials)
    sleeve_metrics: dict[str, dict[str, float]] = {}
    for s in sleeves:
        m = per_sleeve[s]
        recorded = oofs[s].metrics
        sleeve_metrics[s] = {
            "rank_ic_median_path": m["rank_ic_median_path"],
            "path_sharpe_median": m["path_sharpe_median"],
            "pbo": float(recorded.get("pbo", math.nan)),
            "dsr": float(recorded.get("dsr", math.nan)),
        }
    ranked = sorted(
        sleeves,
        key=lambda s: (
            sleeve_metrics[s]["rank_ic_median_path"]
            if math.isfinite(sleeve_metrics[s]["rank_ic_median_path"])
            else -math.inf
        ),
    )
    best = ranked[-1]
    metrics: dict[str, Any] = {
        "oos_rank_ic": stack["rank_ic_median_path"],
        "rank_ic_mean": stack["rank_ic"],
        "path_sharpe_median": stack["path_sharpe_median"],
        "max_drawdown": stack["max_drawdown"],
        "dsr": selected["dsr"],
        "pbo": selected["pbo"],
        "equal_weight_rank_ic": equal["rank_ic_median_path"],
        "best_sleeve": best,
        "best_sleeve_rank_ic": sleeve_metrics[best]["rank_ic_median_path"],
        "best_sleeve_pbo": sleeve_metrics[best]["pbo"],
        "best_sleeve_dsr": sleeve_metrics[best]["dsr"],
    }
    return metrics, sleeve_metrics
