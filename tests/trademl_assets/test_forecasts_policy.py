"""oos_signals → oos_forecaster (gate, champion) → forecast_scores → grpo_policy (gate,
champion) → policy_actions as Dagster assets, with tiny models on a 10-name synthetic market."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from trademl_assets.data import bars
from trademl_assets.features import features
from trademl_assets.forecasts import (
    forecast_scores,
    oos_forecaster,
    oos_forecaster_champion,
    oos_signals,
)
from trademl_assets.partitions import FEATURE_WINDOW, SESSIONS
from trademl_assets.policy import grpo_policy, grpo_policy_champion, policy_actions
from trademl_jobs.definitions import defs

KEYS = SESSIONS.get_partition_keys()
LATEST = KEYS[-1]
HISTORY = 110
ASSETS = [
    bars,
    features,
    oos_signals,
    oos_forecaster,
    oos_forecaster_champion,
    forecast_scores,
    grpo_policy,
    grpo_policy_champion,
    policy_actions,
]
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

TINY = """
forecasts:
  train_sessions: 50
  input_size: 16
  max_steps: 8
  batch_size: 8
  windows_batch_size: 32
  hidden_size: 16
  patch_len: 8
  stride: 4
  nhits_mlp_units: 16
  hist_exog: [rvol_20]
  vol_window: 5
  trend_window: 5
  min_oos_rank_ic: {ic_bar}
  min_oos_rank_ic_t: {ic_bar_t}
policy:
  train_sessions: 60
  epochs: 3
  batch_size: 256
  hidden: [32, 32]   # large enough that a split-off ONNX weights file would break serving
  patience: 2
  min_sharpe_margin: {margin}
  min_sharpe: {margin}
"""


class Env:
    def __init__(self, home: Path, ic_bar: float = -1.0, margin: float = -100.0) -> None:
        self.home = home
        self.lake = Lake(home / "lake")
        cfg = home / "tiny.yaml"
        cfg.write_text(TINY.format(ic_bar=ic_bar, ic_bar_t=100 * ic_bar, margin=margin))
        store = LakeResource(root=str(home / "lake"))
        self.mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        self.resources = {
            **defs.resources,
            "lake": LakeIOManager(store=store),
            "lake_store": store,
            "settings": SettingsResource(config_path=str(cfg)),
            "market_data": MarketDataResource(n_symbols=10, seed=2),
            "mlflow": self.mlflow,
        }

    def run(self, keys: list[str], selection: list[str]) -> dg.ExecuteInProcessResult:
        tags = dict(zip(RANGE, (keys[0], keys[-1]), strict=True)) if len(keys) > 1 else {}
        return dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=keys[0] if len(keys) == 1 else None,
            tags=tags,
            instance=dg.DagsterInstance.ephemeral(),
            resources=self.resources,
            raise_on_error=False,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    e = Env(tmp_path_factory.mktemp("fc"))
    assert e.run(KEYS[-(HISTORY + FEATURE_WINDOW) :], ["bars"]).success
    assert e.run(KEYS[-HISTORY:], ["features", "oos_signals"]).success
    return e


def test_oos_signals_are_keyed_by_the_session_their_return_became_known(env: Env) -> None:
    sig = env.lake.scan("oos_signals", KEYS[-HISTORY:]).collect()
    assert sig.height > 0 and sig.get_column("y").is_finite().all()
    # realization = decision + h sessions (h = execution lag 1 + 1), on the session grid
    grid = [dt.date.fromisoformat(k) for k in KEYS]
    pos = {d: i for i, d in enumerate(grid)}
    pairs = sig.select("decision_date", "date").unique()
    assert all(pos[r] - pos[d] == 2 for d, r in pairs.iter_rows())
    # y is the open-to-open return the decision earned: open(d+1) → open(d+2)
    b = env.lake.scan("bars", KEYS[-HISTORY:]).collect()
    row = sig.row(sig.height // 2, named=True)
    opens = dict(b.filter(pl.col("symbol") == row["symbol"]).select("date", "open").iter_rows())
    d1, d2 = grid[pos[row["decision_date"]] + 1], grid[pos[row["decision_date"]] + 2]
    assert row["y"] == pytest.approx(opens[d2] / opens[d1] - 1.0, rel=1e-12)
    # the forecasts come from models trained at one fixed cutoff before every decision
    assert (sig.get_column("train_end") <= sig.get_column("decision_date")).all()
    assert sig.get_column("model_version").n_unique() == 1


def test_forecaster_and_policy_promote_then_act(env: Env) -> None:
    # scoring finds the champion in the lake, so it runs after the promotion (as the demo does)
    assert env.run([LATEST], ["oos_forecaster", "oos_forecaster_champion"]).success
    assert env.run([LATEST], ["forecast_scores"]).success
    assert str(env.mlflow.alias_version("oos_forecaster", CHAMPION).version) == "1"
    fs = env.lake.scan("forecast_scores", [LATEST]).collect()
    assert fs.height == 10 and fs.get_column("y_hat").is_finite().all()
    assert fs.get_column("forecaster").unique().to_list() == ["1"]

    assert env.run([LATEST], ["grpo_policy", "grpo_policy_champion"]).success
    assert env.run([LATEST], ["policy_actions"]).success
    model = env.lake.scan("grpo_policy", [LATEST]).collect().row(0, named=True)
    assert model["test_sessions"] > 0 and model["train_sessions"] > model["test_sessions"]
    acts = env.lake.scan("policy_actions", [LATEST]).collect()
    assert acts.height == 10
    assert ((acts.get_column("size") > 0) & (acts.get_column("size") < 2)).all()
    sign = acts.get_column("y_hat").sign() * acts.get_column("size")
    assert (acts.get_column("position") - sign).abs().max() < 1e-9  # size along the forecast
    assert acts.get_column("policy_version").unique().to_list() == ["1"]


def test_a_failing_gate_moves_no_champion(env: Env, tmp_path: Path) -> None:
    strict = Env(env.home, ic_bar=1.0, margin=100.0)
    r = strict.run([LATEST], ["oos_forecaster", "oos_forecaster_champion"])
    assert not r.success
    (check,) = r.get_asset_check_evaluations()
    assert not check.passed and "OOS rank IC" in check.description
    materialized = {e.asset_key.to_user_string() for e in r.get_asset_materialization_events()}
    assert materialized == {"oos_forecaster"}  # the blocking gate stopped the promotion
    assert str(env.mlflow.alias_version("oos_forecaster", CHAMPION).version) == "1"
    refused = env.mlflow.alias_version("oos_forecaster", "challenger")
    assert refused is not None and str(refused.version) == "2"
    assert "promotion.refused.rank_ic" in refused.tags
