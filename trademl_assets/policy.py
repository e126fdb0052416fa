"""Sizing: the GRPO policy (a size in [0, 2] per name of the book, from [alpha score, vol,
trend]) as a sizing sleeve, and `sized_weights`, the book the backtest, report and orders
trade — the target weights unchanged (sizer ``identity``) until a sizing champion exists."""

import dataclasses
import datetime as dt
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from resources.lake import MISSING_OK, Lake, LakeError, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.models.policy.book import apply_sizes, book_frame, book_states, evaluate_sizing
from trademl.models.policy.promotion import decide
from trademl.models.sleeve import NotTrainable, Trained
from trademl.params import (
    backtest_params,
    cost_model,
    grpo_params,
    portfolio_params,
    reward_config,
    sizing_features,
)
from trademl_assets.history import ModelCache, champion_as_of, champion_history
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import (
    CALENDAR,
    POLICY_LOOKBACK,
    RL_LOOKBACK,
    SESSIONS,
    SINGLE_RUN,
    sessions_of,
)
from trademl_assets.portfolio import WEIGHTS_SCHEMA
from trademl_assets.sleeve_eval import evaluate_rows
from trademl_assets.sleeves import SleeveSpec

POLICY_INS = {
    name: dg.AssetIn(name, partition_mapping=POLICY_LOOKBACK, metadata={MISSING_OK: True})
    for name in ("target_weights", "features", "bars")
}
ROW_METRICS = (
    "sharpe_sized",
    "sharpe_unsized",
    "improvement_t",
    "return_sized",
    "return_unsized",
    "mean_size",
    "test_sessions",
)
#: Fewest sessions of book history a policy trains and is judged on.
MIN_BOOK_SESSIONS = 30


def train_grpo(inputs: Mapping[str, Any], as_of: dt.date, s: Settings, log: Any) -> Trained:
    """GRPO on the book's history known by `as_of`, judged on its latest sessions (after an
    embargo of `lag + 1` sessions), sized vs unsized through the backtest engine."""
    from trademl.models.policy import GRPOSizer, save_policy, to_onnx

    upto = pl.col("date") <= as_of
    weights = inputs["target_weights"].filter(upto).collect()
    feats = inputs["features"].filter(upto).collect()
    bars = inputs["bars"].filter(upto).select("date", "symbol", "open", "close").collect()
    lag = s.backtest.execution_lag
    frame = book_frame(
        weights,
        feats,
        bars,
        trend_feature=s.policy.trend_feature,
        price=s.backtest.price,
        lag=lag,
        as_of=as_of,
    )
    sessions = frame.get_column("session").unique().sort().to_list()
    if len(sessions) < MIN_BOOK_SESSIONS:
        raise NotTrainable(
            f"the book has {len(sessions)} sessions with a realized next-session return by "
            f"{as_of}; a sizing policy needs {MIN_BOOK_SESSIONS} (materialize target_weights "
            "for more history)"
        )
    n_test = max(5, math.ceil(s.policy.test_frac * len(sessions)))
    first_test = sessions[-n_test]
    train = frame.filter(pl.col("session") < sessions[max(0, len(sessions) - n_test - lag - 1)])
    model = GRPOSizer(params=grpo_params(s)).fit(train)
    log(f"GRPO on {train.height} book rows, best epoch {model.best_epoch_}")
    window = sorted(d for d in bars.get_column("date").unique().to_list() if d >= first_test)
    ev = evaluate_sizing(
        model.act,
        weights,
        feats,
        bars,
        sessions=window,
        trend_feature=s.policy.trend_feature,
        portfolio=portfolio_params(s),
        backtest=backtest_params(s),
        costs=cost_model(s),
    )
    onnx = to_onnx(model)

    def save(directory: Path) -> None:
        save_policy(model, directory)
        (directory / "model.onnx").write_bytes(onnx)

    trained = Trained(
        metrics={
            **ev,
            "best_epoch": float(model.best_epoch_),
            "val_sharpe": float(model.best_val_sharpe_),
        },
        params={**dataclasses.asdict(model.params), "test_from": first_test},
        save=save,
        fingerprint=frame.select("session", "symbol", "y"),
        documents={"history.json": {"history": model.history_}},
        onnx=onnx,
    )
    # the evaluation suite: the sized book's signed positions vs the realized next-session
    # returns on the held-out sessions
    held = frame.filter(pl.col("session") >= first_test)
    evaluate_rows(
        trained,
        model.positions(held),
        held.get_column("y").to_numpy(),
        held.get_column("session").to_numpy(),
        s,
        "grpo_policy positions",
    )
    return trained


def _onnx_policy(directory: Path) -> Any:
    from trademl.models.policy.onnx_policy import OnnxPolicy

    return OnnxPolicy(Path(directory) / "model.onnx")


GRPO = SleeveSpec(
    name="grpo_policy",
    kind="sizing",
    group="sizing",
    ins=POLICY_INS,
    train=train_grpo,
    decide=lambda m, champ, s: decide(m, champ, s.policy.promotion),
    min_shadow=lambda s: s.policy.promotion.min_shadow_sessions,
    gate_description="On sessions after its training window, the sized book's net Sharpe "
    "(backtest with costs) beats the unsized book's by policy.promotion.min_sharpe_margin with "
    "a daily-improvement t-stat ≥ min_improvement_t, is ≥ min_sharpe, and beats the sizing "
    "champion's as of the session; NaN fails closed.",
    load=_onnx_policy,
    model_asset="grpo_policy",
    description="The GRPO sizing policy as of the session: a Beta-headed MLP on [alpha score, "
    "vol, trend] sizing each name of the book in [0, 2], reward = its share of the book's "
    "next-session net return minus cost and a risk penalty; ONNX registered as `grpo_policy`.",
    row_metrics=ROW_METRICS,
    pool="gpu",
    kinds=frozenset({"pytorch", "onnx", "mlflow"}),
)

#: The traded book: the target weights' columns with the size and the sizer beside them.
SIZED_SCHEMA = {
    **{k: v for k, v in WEIGHTS_SCHEMA.items() if k in ("date", "symbol", "weight")},
    "target_weight": pl.Float64,
    "size": pl.Float64,
    "sizer": pl.String,
    **{k: v for k, v in WEIGHTS_SCHEMA.items() if k not in ("date", "symbol", "weight")},
}


#: What a sizing policy may read besides the session: the trailing window of target weights,
#: features (date, symbol, trend) and bars (date, symbol, open, close), up to the session.
SizingHistory = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
#: The sizing inputs every sized book reads: a trailing window of each (see `SizingHistory`).
SIZING_HISTORY_INS = {
    name: dg.AssetIn(name, partition_mapping=RL_LOOKBACK, metadata={MISSING_OK: True})
    for name in ("target_weights", "features", "bars")
}


def sizing_inputs(
    target_weights: pl.LazyFrame,
    features: pl.LazyFrame,
    bars: pl.LazyFrame,
    s: Settings,
    lake: Lake,
    keys: Sequence[str],
) -> SizingHistory:
    """The trailing windows a run's sized books read, collected once; the run's own sessions
    of target weights must be written (the window before them may start short)."""
    written = set(lake.partitions("target_weights"))
    absent = [k for k in keys if k not in written]
    if absent:
        raise LakeError(
            f"target_weights: {len(absent)} of the run's {len(keys)} sessions are not written "
            f"({', '.join(absent[:5])}); materialize target_weights for them first"
        )
    return (
        target_weights.collect(),
        features.select("date", "symbol", *sizing_features(s)).collect(),
        bars.select("date", "symbol", "open", "close").collect(),
    )


def history_upto(history: SizingHistory, session: dt.date) -> SizingHistory:
    """The windows as known at `session`'s close (nothing after it)."""
    w, f, b = (x.filter(pl.col("date") <= session) for x in history)
    return w, f, b


def held_before(lake: Lake, session: dt.date, s: Settings) -> dict[str, float] | None:
    """The traded book's positions (`sized_weights`) of the session before `session`, where
    a sizer's action depends on them (participation rates); None when not needed or not
    written (the sizer then assumes the previous target weights were held)."""
    prev = CALENDAR.previous_session(session)
    if reward_config(s).action != "participation" or prev is None:
        return None
    if not lake.exists("sized_weights") or str(prev) not in lake.partitions("sized_weights"):
        return None
    rows = lake.scan("sized_weights", [str(prev)]).select("symbol", "weight").collect()
    return {sym: w for sym, w in rows.iter_rows() if w != 0}


def size_book(
    day: pl.DataFrame,
    feats: pl.DataFrame,
    policy: Any,
    s: Settings,
    history: SizingHistory | None = None,
    held: dict[str, float] | None = None,
) -> pl.DataFrame:
    """One session's target weights sized by `policy` (ONNX) and capped again. A policy whose
    states need the book's recent history (`sizes_for`, offline RL) gets `history` and the
    positions `held` before the session (None: the previous target weights)."""
    if hasattr(policy, "sizes_for"):
        if history is None:
            raise ValueError(f"{type(policy).__name__} sizes from the book's history: pass it")
        sizes = policy.sizes_for(day, history, s, held)
        return apply_sizes(day, sizes, portfolio_params(s))
    states = book_states(day, feats, trend_feature=s.policy.trend_feature)
    sizes = day.join(
        states.select(
            pl.col("session").alias("date"),
            "symbol",
            pl.Series("size", policy.act(states) if states.height else []),
        ),
        on=["date", "symbol"],
        how="left",
    ).get_column("size")
    return apply_sizes(day, sizes.fill_null(1.0).to_numpy(), portfolio_params(s))


def sizing_sleeves(specs: Sequence[SleeveSpec]) -> dg.AssetsDefinition:
    """`sized_weights`: the first sizing sleeve (in registry order) with a champion as of
    the session sizes the book; none → the identity, labelled as such."""

    @dg.asset(
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        group_name="sizing",
        io_manager_key="lake",
        ins=SIZING_HISTORY_INS,
        metadata={"partition_column": "date"},
        kinds={"onnx", "polars"},
    )
    def sized_weights(
        context: dg.AssetExecutionContext,
        target_weights: pl.LazyFrame,
        features: pl.LazyFrame,
        bars: pl.LazyFrame,
        settings: SettingsResource,
        lake_store: LakeResource,
        mlflow: MlflowResource,
    ) -> dg.Output[pl.DataFrame]:
        """The traded book: target weights × the sizing champion's per-name size, capped
        again (name cap, balanced legs, gross cap); size 1 with sizer `identity` until a
        sizing champion exists."""
        s = settings.get()
        keys = context.partition_keys
        window = sizing_inputs(target_weights, features, bars, s, lake_store.lake, keys)
        histories = {sp.name: champion_history(lake_store.lake, sp.champion_key) for sp in specs}
        parts, sizers = [], {}
        held = held_before(lake_store.lake, sessions_of(keys)[0], s) if keys else None
        with tempfile.TemporaryDirectory() as tmp:
            caches = {sp.name: ModelCache(mlflow, sp.load, f"{tmp}/{sp.name}") for sp in specs}
            for session in sessions_of(context.partition_keys):
                day = window[0].filter(pl.col("date") == session)
                champ = next(
                    (
                        (n, r)
                        for n, h in histories.items()
                        if (r := champion_as_of(h, session)) is not None
                    ),
                    None,
                )
                if champ is None or day.height == 0:
                    out = day.with_columns(
                        pl.col("weight").alias("target_weight"), pl.lit(1.0).alias("size")
                    )
                    sizer = "identity"
                else:
                    name, row = champ
                    feats = window[1].filter(pl.col("date") == session)
                    known = history_upto(window, session)
                    out = size_book(day, feats, caches[name].get(row), s, known, held)
                    sizer = f"{name}@{row['version']}"
                held = {sym: w for sym, w in out.select("symbol", "weight").iter_rows() if w}
                sizers[str(session)] = sizer
                parts.append(out.with_columns(pl.lit(sizer).alias("sizer")))
        frame = (
            pl.concat(parts, how="diagonal_relaxed").select(list(SIZED_SCHEMA)).cast(SIZED_SCHEMA)
            if parts
            else pl.DataFrame(schema=SIZED_SCHEMA)
        )
        meta = frame_metadata(frame, len(context.partition_keys))
        meta["sizers"] = dg.MetadataValue.json(sorted(set(sizers.values())))
        last = (
            frame.filter(pl.col("date") == frame.get_column("date").max())
            if frame.height
            else frame
        )
        meta["mean_size_last_session"] = dg.MetadataValue.float(
            float(np.nanmean(last.get_column("size").to_numpy())) if last.height else math.nan
        )
        return dg.Output(frame, metadata=meta)

    return sized_weights
