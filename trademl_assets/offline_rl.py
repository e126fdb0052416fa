"""Offline RL sizing: `rl_trajectories`, the logged dataset it learns from (the traded book's
decisions with documented exploration, appended per session as their rewards become known),
and the `offline_rl` sizing sleeve (train → OPE + replay gate → challenger → champion), a
second sizing challenger beside the GRPO policy in `sized_weights` and the shadow books."""

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from resources.lake import MISSING_OK
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.models.offline_rl.env import size_multiplier
from trademl.models.offline_rl.pipeline import fit_policy, judge, split_log
from trademl.models.offline_rl.promotion import decide
from trademl.models.offline_rl.trajectories import logged_book, serving_states
from trademl.models.sleeve import NotTrainable, Trained
from trademl.params import offline_rl_params, reward_config, sizing_features
from trademl_assets.metadata import frame_metadata
from trademl_assets.partitions import (
    RL_LOOKBACK,
    RL_TRAIN_LOOKBACK,
    SESSIONS,
    SINGLE_RUN,
    sessions_of,
)
from trademl_assets.sleeve_eval import evaluate_rows
from trademl_assets.sleeves import SleeveSpec

RL_INS = {
    name: dg.AssetIn(name, partition_mapping=RL_LOOKBACK, metadata={MISSING_OK: True})
    for name in ("target_weights", "features", "bars")
}


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="sizing",
    io_manager_key="lake",
    ins=RL_INS,
    metadata={"partition_column": "known"},
    kinds={"polars", "delta"},
)
def rl_trajectories(
    context: dg.AssetExecutionContext,
    target_weights: pl.LazyFrame,
    features: pl.LazyFrame,
    bars: pl.LazyFrame,
    settings: SettingsResource,
) -> dg.Output[pl.DataFrame]:
    """Per session d, the book's decisions whose reward became known at d (decided lag + 1
    sessions before): state, the behaviour policy's bucket (1.0 × the target weight, or with
    probability ε a uniform one) with every bucket's probability, and the reward. A row is
    never rewritten by later data: its state comes from a fixed window before it."""
    s = settings.get()
    known = sessions_of(context.partition_keys)
    log = logged_book(
        target_weights.collect(),
        features.select("date", "symbol", *sizing_features(s)).collect(),
        bars.select("date", "symbol", "open", "close").collect(),
        known,
        trend_feature=s.policy.trend_feature,
        price=s.backtest.price,
        lag=s.backtest.execution_lag,
        cfg=reward_config(s),
        epsilon=s.offline_rl.epsilon,
        seed=s.offline_rl.seed,
    )
    meta = frame_metadata(log, len(known))
    if log.height:
        meta["explored_share"] = dg.MetadataValue.float(
            float((log.get_column("bucket") != 1.0).mean())
        )
        meta["mean_reward_bps"] = dg.MetadataValue.float(float(log.get_column("reward").mean()))
    return dg.Output(log, metadata=meta)


#: Fewest logged decision sessions a policy trains and is judged on.
MIN_LOG_SESSIONS = 30
TRAIN_INS = {
    "rl_trajectories": dg.AssetIn(
        "rl_trajectories", partition_mapping=RL_TRAIN_LOOKBACK, metadata={MISSING_OK: True}
    ),
    # the book itself, for the gate's portfolio backtest of the held-out sessions
    **{
        name: dg.AssetIn(name, partition_mapping=RL_TRAIN_LOOKBACK, metadata={MISSING_OK: True})
        for name in ("target_weights", "features", "bars")
    },
}


def train_offline_rl(inputs: Mapping[str, Any], as_of: dt.date, s: Settings, log: Any) -> Trained:
    """Discrete CQL (or IQL) on the trajectories whose reward was known by `as_of`, judged on
    the latest logged sessions by OPE and by a replay against the traded book — the ONNX graph
    that will serve is the policy judged."""
    from trademl.models.offline_rl.export import export_onnx
    from trademl.models.offline_rl.serving import OnnxBucketPolicy

    logged = inputs["rl_trajectories"].filter(pl.col("known") <= as_of).collect()
    n_sessions = logged.get_column("session").n_unique() if logged.height else 0
    if n_sessions < MIN_LOG_SESSIONS:
        raise NotTrainable(
            f"rl_trajectories holds {n_sessions} decision sessions known by {as_of}; an "
            f"offline RL policy needs {MIN_LOG_SESSIONS} (materialize rl_trajectories for "
            "more history)"
        )
    cfg, params = reward_config(s), offline_rl_params(s)
    train, test = split_log(logged, test_frac=params.test_frac, lag=s.backtest.execution_lag)
    device = "cuda:0" if s.env == "gpu" and _cuda() else "cpu:0"
    policy = fit_policy(train, cfg, params, device=device)
    onnx = export_onnx(policy)
    served = OnnxBucketPolicy(onnx, cfg.buckets)
    judged = judge(served.actions, served.probs, test, cfg, params)
    judged.metrics |= _book_backtest(inputs, served, test, as_of, s)
    log(
        f"offline RL ({params.algo}) on {train.height} logged decisions; judged on "
        f"{test.height}: DR {judged.report.estimates['dr'].estimate:.3g} "
        f"[{judged.report.estimates['dr'].lower:.3g}, {judged.report.estimates['dr'].upper:.3g}]"
        f" vs behaviour {judged.report.behaviour.estimate:.3g}"
    )

    def save(directory: Path) -> None:
        policy.save(directory / "policy")
        (directory / "model.onnx").write_bytes(onnx)
        (directory / "buckets.json").write_text(json.dumps(list(cfg.buckets)))

    first_test = test.get_column("session").min()
    trained = Trained(
        metrics={k: float(v) for k, v in judged.metrics.items()},
        params={
            **dataclasses.asdict(params),
            "buckets": list(cfg.buckets),
            "test_from": first_test,
        },
        save=save,
        fingerprint=logged.select("known", "session", "symbol", "action", "reward"),
        documents={"ope.json": dataclasses.asdict(judged.report)},
        onnx=onnx,
    )
    if s.offline_rl.action == "size" and test.height:
        # the evaluation suite: the served policy's positions (bucket × exposure) vs the
        # realized next-session returns of the held-out sessions
        obs = test.select(list(cfg.state)).to_numpy().astype(np.float32)
        size = np.asarray(cfg.buckets)[served.actions(obs)]
        evaluate_rows(
            trained,
            size * test.get_column("exposure").to_numpy(),
            test.get_column("y").to_numpy(),
            test.get_column("session").to_numpy(),
            s,
            "offline_rl positions",
        )
    return trained


def _book_backtest(
    inputs: Mapping[str, Any], served: Any, test: pl.DataFrame, as_of: dt.date, s: Settings
) -> dict[str, float]:
    """The served book sized by the policy vs unsized on the held-out sessions, through the
    platform's backtest and cost model with the portfolio caps (`evaluate_sizing`): each
    session's sizes come from the states the book's history gave at that session."""
    from trademl.models.policy.book import evaluate_sizing
    from trademl.params import backtest_params, cost_model, portfolio_params

    upto = pl.col("date") <= as_of
    weights = inputs["target_weights"].filter(upto).collect()
    feats = inputs["features"].select("date", "symbol", *sizing_features(s)).filter(upto)
    feats = feats.collect()
    bars = inputs["bars"].select("date", "symbol", "open", "close").filter(upto).collect()
    sessions = sorted(d for d in bars.get_column("date").unique() if d >= test["session"].min())
    if not sessions:
        return {}
    cfg = reward_config(s)
    sizes: dict[tuple[dt.date, str], float] = {}
    held: dict[str, float] = {}  # the sized book's positions, session to session
    for day in sessions:
        known = [x.filter(pl.col("date") <= day) for x in (weights, feats, bars)]
        states = serving_states(
            *known,
            day,
            trend_feature=s.policy.trend_feature,
            price=s.backtest.price,
            lag=s.backtest.execution_lag,
            cfg=cfg,
            prev_position=held if held else None,
        )
        if states.height:
            out = served_sizes(served, states, cfg)
            names = states.get_column("symbol").to_list()
            sizes |= {(day, sym): float(x) for sym, x in zip(names, out, strict=True)}
            w = states.get_column("exposure").to_numpy()
            held = dict(zip(names, (out * w).tolist(), strict=True))

    def size_fn(rows: pl.DataFrame) -> np.ndarray:
        days, names = rows.get_column("session").to_list(), rows.get_column("symbol").to_list()
        return np.array([sizes.get(k, 1.0) for k in zip(days, names, strict=True)])

    ev = evaluate_sizing(
        size_fn,
        weights,
        feats,
        bars,
        sessions=sessions,
        trend_feature=s.policy.trend_feature,
        portfolio=portfolio_params(s),
        backtest=backtest_params(s),
        costs=cost_model(s),
    )
    keep = ("sharpe_sized", "sharpe_unsized", "improvement_t", "return_sized", "return_unsized")
    return {f"book_{k}": float(ev[k]) for k in keep if k in ev}


def served_sizes(policy: Any, states: pl.DataFrame, cfg: Any) -> np.ndarray:
    """Each state's size multiplier of the target weight under the served policy: its
    bucket (size), or the position its participation rate leaves over the weight."""
    obs = states.select(list(cfg.state)).to_numpy().astype(np.float32)
    w = states.get_column("exposure").to_numpy()
    prev = states.get_column("prev_position").to_numpy()
    return size_multiplier(policy.sizes(obs), w, prev, cfg)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class RLSizer:
    """The served offline RL policy as a sizing policy: the session's states from the book's
    recent history (`serving_states`, what the log recorded), a bucket per name."""

    def __init__(self, directory: Path) -> None:
        from trademl.models.offline_rl.serving import OnnxBucketPolicy

        buckets = json.loads((directory / "buckets.json").read_text())
        self.policy = OnnxBucketPolicy(directory / "model.onnx", buckets)

    def sizes_for(
        self,
        day: pl.DataFrame,
        history: Any,
        s: Settings,
        prev_position: dict[str, float] | None = None,
    ) -> np.ndarray:
        """One size (multiplier of the target weight) per row of `day`; a name without a
        state keeps 1. `prev_position`: the positions the traded book holds (default: the
        previous session's target weights)."""
        weights, feats, bars = history
        session = day.get_column("date").max()
        states = serving_states(
            weights,
            feats,
            bars,
            session,
            trend_feature=s.policy.trend_feature,
            price=s.backtest.price,
            lag=s.backtest.execution_lag,
            cfg=reward_config(s),
            prev_position=prev_position,
        )
        if states.height == 0:
            return np.ones(day.height)
        sizes = served_sizes(self.policy, states, reward_config(s))
        by_name = dict(zip(states.get_column("symbol").to_list(), sizes.tolist(), strict=True))
        return np.array([by_name.get(sym, 1.0) for sym in day.get_column("symbol").to_list()])


OFFLINE_RL = SleeveSpec(
    name="offline_rl",
    kind="sizing",
    group="sizing",
    ins=TRAIN_INS,
    train=train_offline_rl,
    decide=lambda m, champ, s: decide(m, champ, s.offline_rl.promotion),
    min_shadow=lambda s: s.offline_rl.promotion.min_shadow_sessions,
    gate_description="On the logged sessions after its training window, the doubly robust "
    "lower confidence bound beats the behaviour policy's value by offline_rl.promotion.margin, "
    "its replay beats the traded book (bucket 1.0) with a t-stat ≥ min_improvement_t, the book "
    "it sizes beats the unsized book's net Sharpe in the platform's backtest (caps, costs), "
    "and it beats the sizing champion's replay; NaN fails closed.",
    load=RLSizer,
    model_asset="offline_rl_policy",
    description="The offline RL sizing policy as of the session: discrete CQL (d3rlpy) on "
    "rl_trajectories choosing a bucket of each name's target weight from its state; ONNX "
    "registered as `offline_rl`; serving reads only onnxruntime.",
    row_metrics=(
        "ope_dr",
        "ope_dr_lo",
        "ope_dr_hi",
        "ope_behaviour",
        "replay_improvement_t",
        "replay_policy_bps_per_session",
        "book_sharpe_sized",
        "book_sharpe_unsized",
        "mean_bucket",
    ),
    pool="gpu",
    kinds=frozenset({"pytorch", "onnx", "mlflow"}),
)
