"""Every sleeve reaches the book: two alpha sleeves that each see one of two planted signals,
the stacker over their out-of-fold predictions, the router serving the session, the sized
book, the shadow books and orders — as Dagster assets on a small synthetic market."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import CHAMPION, MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from trademl_assets import policy, portfolio, report, shadow, stacker
from trademl_assets.champion import champion_asset
from trademl_assets.data import bars
from trademl_assets.equities import equities_spec
from trademl_assets.execution import orders
from trademl_assets.features import features
from trademl_assets.labels import labels
from trademl_assets.partitions import SESSIONS
from trademl_assets.sleeves import model_assets, scores_asset
from trademl_jobs.definitions import defs

KEYS = SESSIONS.get_partition_keys()[:330]
AS_OF = KEYS[-1]
BOOK = KEYS[-60:]  # sessions of served book before the training (fit-free), for sizing
LGBM, CATBOOST = equities_spec("lgbm"), equities_spec("catboost")
STACKER = stacker.spec(["equities_lgbm", "equities_catboost"])
SIZING = [policy.GRPO]
ASSETS = [
    bars,
    features,
    labels,
    *[
        a
        for sp in (LGBM, CATBOOST)
        for a in (model_assets(sp), champion_asset(sp), scores_asset(sp))
    ],
    model_assets(STACKER),
    champion_asset(STACKER),
    model_assets(policy.GRPO),
    champion_asset(policy.GRPO),
    portfolio.alpha_scores_asset([LGBM, CATBOOST], STACKER),
    portfolio.target_weights,
    policy.sizing_sleeves(SIZING),
    shadow.shadow_weights_asset([LGBM, CATBOOST], STACKER, SIZING),
    shadow.shadow_books,
    portfolio.backtest,
    report.daily_report,
    orders,
]
MOMENTUM = ["mom_20", "xs_rank_mom_20", "xs_z_mom_20", "mom_60"]
REVERSAL = ["mom_5", "xs_rank_mom_5", "xs_z_mom_5", "gap_1"]
CONFIG = f"""
equities:
  models: [lgbm, catboost]
  features: {{lgbm: {MOMENTUM}, catboost: {REVERSAL}}}
  n_trials: 2
  n_estimators: 40
  n_groups: 6
  n_test_groups: 2
  embargo: 5
  half_life_months: null
  promotion: {{min_path_sharpe: 0.0, max_drawdown: 1.0, min_dsr: 0.0, max_pbo: 1.0,
              ic_margin_vs_baseline: -1.0}}
stacker:
  sleeves: [equities_lgbm, equities_catboost]
  promotion: {{max_pbo: 1.0, min_dsr: 0.0}}
router: {{fallback_weights: {{equities_lgbm: 1.0}}}}
policy: {{epochs: 2, batch_size: 512, patience: 1}}
"""
SCORES = ["equities_lgbm_scores", "equities_catboost_scores"]
SERVE = [*SCORES, "alpha_scores", "target_weights", "sized_weights"]
TRAIN = [k for sp in (LGBM, CATBOOST) for k in (sp.model_key, sp.oof_key, sp.champion_key)]


class Env:
    def __init__(self, home: Path) -> None:
        self.lake = Lake(home / "lake")
        cfg = home / "stack.yaml"
        cfg.write_text(CONFIG)
        store = LakeResource(root=str(home / "lake"))
        self.mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        self.resources = {
            **defs.resources,
            "lake": LakeIOManager(store=store),
            "lake_store": store,
            "settings": SettingsResource(config_path=str(cfg)),
            "market_data": MarketDataResource(
                n_symbols=40, seed=11, target_ic=0.15, reversal_ic=0.15
            ),
            "mlflow": self.mlflow,
        }

    def run(self, keys: list[str], selection: list[str]) -> dg.ExecuteInProcessResult:
        tags = (
            {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            }
            if len(keys) > 1
            else {}
        )
        result = dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=keys[0] if len(keys) == 1 else None,
            tags=tags,
            instance=dg.DagsterInstance.ephemeral(),
            resources=self.resources,
            raise_on_error=False,
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        return result


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    e = Env(tmp_path_factory.mktemp("stack"))
    e.run(KEYS, ["bars", "features", "labels"])
    e.run(BOOK, SERVE)  # no champion yet: the fit-free book
    e.run([AS_OF], TRAIN)
    e.run([AS_OF], [STACKER.model_key, STACKER.champion_key])
    e.run([AS_OF], [*SERVE, "shadow_weights", "shadow_books", "backtest"])
    return e


def _row(env: Env, asset: str) -> dict:
    return env.lake.scan(asset, [AS_OF]).collect().row(0, named=True)


def test_each_sleeve_finds_its_signal_and_the_stacker_beats_both(env: Env) -> None:
    lgbm, cat = _row(env, "equities_lgbm_model"), _row(env, "equities_catboost_model")
    assert lgbm["passed_gate"] and cat["passed_gate"], (lgbm["verdict"], cat["verdict"])
    assert lgbm["oos_rank_ic"] > 0.03 and cat["oos_rank_ic"] > 0.03
    stk = _row(env, "stacker_model")
    assert stk["passed_gate"], stk["verdict"]
    assert stk["oos_rank_ic"] > max(lgbm["oos_rank_ic"], cat["oos_rank_ic"]) + 0.005
    info = json.loads(stk["info"])
    assert info["sleeves"] == "equities_catboost,equities_lgbm"
    assert str(env.mlflow.alias_version("stacker", CHAMPION).version) == "1"


def test_the_stacker_champion_serves_and_orders_come_from_the_champion_book(env: Env) -> None:
    served = env.lake.scan("alpha_scores", [AS_OF]).collect()
    assert served.get_column("path").unique().to_list() == ["stacker"]
    models = json.loads(served.get_column("models")[0])
    assert models == {"equities_lgbm": "1", "equities_catboost": "1", "stacker": "1"}
    # the DSR behind the book deflates for both sleeves' searches and the stacker's
    assert served.get_column("n_trials")[0] == 2 + 2 + 2
    sized = env.lake.scan("sized_weights", [AS_OF]).collect()
    assert sized.get_column("sizer").unique().to_list() == ["identity"]  # no sizing champion
    assert (sized.get_column("weight") == sized.get_column("target_weight")).all()
    assert sized.get_column("source").unique().to_list() == ["stacker"]
    # the book before the training traded the fit-free fallback, and the backtest says so
    bt = env.lake.scan("backtest", [AS_OF]).collect()
    by_source = json.loads(bt.get_column("sessions_by_source")[-1])
    assert by_source["stacker"] == 1 and by_source["fit_free"] == len(BOOK) - 1
    env.run([AS_OF], ["orders"])
    o = env.lake.scan("orders", [AS_OF]).collect()
    held = sized.filter(pl.col("weight") != 0)
    assert sorted(o.get_column("symbol").to_list()) == sorted(held.get_column("symbol").to_list())
    # a past session: planned from the champion book, and halted (never sent late)
    assert set(o.get_column("status").to_list()) == {"halted"}


def test_a_missing_sleeve_falls_back_exactly_as_configured_and_says_so(env: Env) -> None:
    day = env.lake.scan("equities_catboost_scores", [AS_OF]).collect()
    env.lake.write_partitions("equities_catboost_scores", day.clear(), [AS_OF], "date")
    try:
        r = env.run([AS_OF], ["alpha_scores"])
        served = env.lake.scan("alpha_scores", [AS_OF]).collect()
        assert served.get_column("path").unique().to_list() == ["fallback_weights"]
        assert json.loads(served.get_column("models")[0]) == {"equities_lgbm": "1"}
        (mat,) = [
            e
            for e in r.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "alpha_scores"
        ]
        assert mat.materialization.metadata["served_last_session"].value.startswith(
            "fallback_weights: equities_lgbm@1"
        )
        lgbm = env.lake.scan("equities_lgbm_scores", [AS_OF]).collect()
        ranked = served.join(lgbm, on="symbol").select(
            pl.corr("score", "score_right", method="spearman")
        )
        assert ranked.item() == pytest.approx(1.0)  # the one sleeve present, as configured
    finally:
        env.lake.write_partitions("equities_catboost_scores", day, [AS_OF], "date")
        env.run([AS_OF], ["alpha_scores"])


def test_the_sizing_policy_is_judged_on_the_book_and_every_challenger_trades_in_the_shadow(
    env: Env,
) -> None:
    env.run([AS_OF], ["grpo_policy", "grpo_policy_champion"])
    pol = _row(env, "grpo_policy")
    assert pol["version"] == "1" and pol["test_sessions"] > 0
    assert pol["verdict"]  # promoted or refused, with the bars
    # the evaluation suite: the sized positions vs the realized returns of the held-out sessions
    run = env.mlflow.client().get_run(
        env.mlflow.client().get_model_version("grpo_policy", pol["version"]).run_id
    )
    assert 0 < run.data.metrics["eval_periods"] <= pol["test_sessions"]
    assert 0.0 < run.data.metrics["eval_coverage"] <= 1.0 and "eval_rank_ic" in run.data.metrics
    # a strict second retrain of a sleeve: refused → the challenger trades in the shadow
    env.run([AS_OF], ["sized_weights", *SCORES, "shadow_weights", "shadow_books"])
    books = env.lake.scan("shadow_books", [AS_OF]).collect()
    assert books.filter(pl.col("role") == "served").height == 1
    expected = {f"grpo_policy@{pol['version']}"} if not pol["passed_gate"] else set()
    challengers = set(books.filter(pl.col("role") == "challenger").get_column("book"))
    assert challengers == expected
    sized = env.lake.scan("sized_weights", [AS_OF]).collect()
    if pol["passed_gate"]:
        assert sized.get_column("sizer").unique().to_list() == ["grpo_policy@1"]
        w = sized.get_column("weight")
        assert w.abs().max() <= 0.05 + 1e-12 and abs(w.sum()) < 1e-12  # the caps hold
    else:
        assert sized.get_column("sizer").unique().to_list() == ["identity"]
