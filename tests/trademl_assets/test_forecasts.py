"""oos_signals → forecasts sleeve (gate, champion, OOF with its walk-forward layout) →
forecasts_scores, as Dagster assets with tiny models on a 10-name synthetic market."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from trademl.validation.layout import SplitLayout
from trademl_assets.champion import champion_asset
from trademl_assets.data import bars
from trademl_assets.features import features
from trademl_assets.forecasts import SPEC, oos_signals
from trademl_assets.partitions import FEATURE_WINDOW, SESSIONS
from trademl_assets.sleeves import model_assets, scores_asset
from trademl_jobs.definitions import defs

KEYS = SESSIONS.get_partition_keys()
LATEST = KEYS[-1]
HISTORY = 110
ASSETS = [bars, features, oos_signals, model_assets(SPEC), champion_asset(SPEC), scores_asset(SPEC)]
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
TRAIN = ["forecasts_model", "forecasts_oof", "forecasts_champion"]

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
  promotion: {{min_oos_rank_ic: {ic_bar}, min_oos_rank_ic_t: {ic_bar_t}}}
"""


class Env:
    def __init__(self, home: Path, ic_bar: float = -1.0) -> None:
        self.home = home
        self.lake = Lake(home / "lake")
        cfg = home / f"tiny_{ic_bar}.yaml"
        cfg.write_text(TINY.format(ic_bar=ic_bar, ic_bar_t=100 * ic_bar))
        store = LakeResource(root=str(home / "lake"))
        self.mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        self.resources = {
            **defs.resources,
            "lake": LakeIOManager(store=store),
            "lake_store": store,
            "settings": SettingsResource(config_path=str(cfg)),
            # no missing bars: every name is scored at the latest session, whichever it is
            "market_data": MarketDataResource(n_symbols=10, seed=2, missing_bar_rate=0.0),
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


def test_forecasts_sleeve_promotes_publishes_its_oof_then_scores_ranked(env: Env) -> None:
    assert env.run([LATEST], TRAIN).success
    # scoring finds the champion in the lake, so it runs after the promotion (as the demo does)
    assert env.run([LATEST], ["forecasts_scores"]).success
    assert str(env.mlflow.alias_version("forecasts", CHAMPION).version) == "1"
    fs = env.lake.scan("forecasts_scores", [LATEST]).collect()
    assert fs.height == 10 and fs.get_column("score").is_finite().all()
    # the blend ranked within the session: ten distinct ranks in [-0.5, 0.5]
    assert fs.get_column("score").min() == -0.5 and fs.get_column("score").max() == 0.5
    assert fs.get_column("model_version").unique().to_list() == ["1"]
    # OOF: the realized OOS signals by decision session, with their walk-forward cutoffs
    oof = env.lake.scan("forecasts_oof", [LATEST]).collect()
    sig = env.lake.scan("oos_signals", KEYS[-HISTORY:]).collect()
    assert oof.height == sig.filter(pl.col("y_hat").is_finite()).height
    layout = SplitLayout.from_dict(json.loads(oof.get_column("layout")[0]))
    assert layout.kind == "walk_forward"
    assert layout.cutoffs == tuple(str(d) for d in sig.get_column("train_end").unique())
    assert oof.get_column("date").max() < dt.date.fromisoformat(LATEST)  # decided before


def test_a_failing_gate_or_no_better_than_the_champion_is_refused(env: Env) -> None:
    strict = Env(env.home, ic_bar=1.0)
    r = strict.run([LATEST], TRAIN)
    assert r.success  # a verdict, not a crash
    (check,) = r.get_asset_check_evaluations()
    assert not check.passed and "oos_rank_ic" in check.description
    materialized = {e.asset_key.to_user_string() for e in r.get_asset_materialization_events()}
    assert materialized == {"forecasts_model", "forecasts_oof"}  # no promotion
    assert str(env.mlflow.alias_version("forecasts", CHAMPION).version) == "1"
    refused = env.mlflow.alias_version("forecasts", "challenger")
    assert refused is not None and str(refused.version) == "2"
    assert "promotion.refused.oos_rank_ic" in refused.tags
    # the same data again: the same OOS quality, not better than the champion → refused
    r = env.run([LATEST], TRAIN)
    (check,) = r.get_asset_check_evaluations()
    assert r.success and not check.passed and "rank_ic_vs_champion" in check.description
    assert str(env.mlflow.alias_version("forecasts", CHAMPION).version) == "1"
