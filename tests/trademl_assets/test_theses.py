"""The thesis sleeve through Dagster: `thesis_model` as of a session runs the walk-forward
(SFT vs RFT), logs the evaluation suite and the SFT-vs-RFT bootstrap interval, registers
`thesis`, and its gate refuses when the bars are out of reach; the champion scores the
session (expected decision sign in [−1, 1]); `theses` writes a schema-valid thesis for every
name in the book, and the daily report shows those of the top longs and shorts."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from resources.lake import Lake, LakeIOManager, LakeResource
from resources.mlflow import MlflowResource
from resources.settings import MarketDataResource, SettingsResource
from tests.trademl_assets.conftest import RANGE_END, RANGE_START
from trademl.backtest.report import report_markdown, session_report
from trademl.models.theses.schema import validate
from trademl.validation.layout import SplitLayout, common_layout
from trademl_assets.champion import champion_asset
from trademl_assets.data import bars
from trademl_assets.equities import equities_spec
from trademl_assets.features import features
from trademl_assets.labels import labels
from trademl_assets.partitions import SESSIONS
from trademl_assets.sleeves import model_assets, scores_asset
from trademl_assets.theses import SPEC, session_theses, theses, top_theses

pytest.importorskip("torch")
KEYS = SESSIONS.get_partition_keys()[:300]
#: the book, written straight to the lake here (the portfolio is tested elsewhere)
BOOK = dg.SourceAsset(
    "target_weights",
    partitions_def=SESSIONS,
    metadata={"partition_column": "date"},
    io_manager_key="lake",
)
LGBM = equities_spec("lgbm")
ASSETS = [
    model_assets(LGBM),
    bars,
    features,
    labels,
    model_assets(SPEC),
    champion_asset(SPEC),
    scores_asset(SPEC),
    theses,
    BOOK,
]
CFG = (
    "theses: {{fold_train: 100, fold_test: 50, sft_epochs: 5, rft_epochs: 5,"
    " promotion: {promotion}}}\nevaluation: {{n_boot: 100}}\n"
)
LENIENT = "{margin: -100.0, min_sharpe: -100.0, min_validity: 0.0}"
STRICT = "{min_sharpe: 100.0}"
MODEL = ["thesis_model", "thesis_oof", "thesis_champion"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("theses")
    store = LakeResource(root=str(home / "lake"))
    base = {
        "lake": LakeIOManager(store=store),
        "lake_store": store,
        "market_data": MarketDataResource(n_symbols=30, seed=5, target_ic=0.15),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}"),
    }
    assert _run(base, home, KEYS, ["bars", "features", "labels"], LENIENT).success
    return base, home


def _run(base, home, keys, selection, promotion, extra=""):
    cfg = home / f"cfg_{abs(hash((promotion, extra)))}.yaml"
    cfg.write_text(CFG.format(promotion=promotion) + extra)
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if len(keys) > 1 else {}
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=keys[0] if len(keys) == 1 else None,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
        resources={**base, "settings": SettingsResource(config_path=str(cfg))},
        raise_on_error=False,
    )


def test_the_thesis_sleeve_trains_scores_and_writes_valid_theses_for_the_book(env):
    base, home = env
    as_of = KEYS[-1]
    mlflow: MlflowResource = base["mlflow"]
    assert _run(base, home, [as_of], MODEL, LENIENT).success
    run = mlflow.client().get_run(mlflow.alias_version("thesis", "champion").run_id)
    m = run.data.metrics
    assert {
        "sft_sharpe",
        "rft_sharpe",
        "rft_validity",
        "sft_ce_decision",
        "rft_mean_reward",
    } <= set(m)
    assert m["rft_vs_sft_rank_ic_lo"] <= m["rft_vs_sft_rank_ic"] <= m["rft_vs_sft_rank_ic_hi"]
    assert m["eval_coverage"] == pytest.approx(1.0) and "eval_ndcg_at_k" in m  # the suite
    plots = {a.path for a in mlflow.client().list_artifacts(run.info.run_id, "plots")}
    assert "plots/thesis_folds.png" in plots
    lake = Lake(home / "lake")
    oof = lake.scan("thesis_oof", [as_of]).collect()
    assert oof.get_column("date").n_unique() == 3 * 50  # the three test spans
    assert oof.get_column("oof_path_0").is_between(-1, 1).all()

    assert _run(base, home, [as_of], ["thesis_scores"], LENIENT).success
    scores = lake.scan("thesis_scores", [as_of]).collect()
    assert scores.height == 30 and scores.get_column("score").is_between(-1, 1).all()

    book = pl.DataFrame(
        {
            "date": [KEYS[-1]] * 4,
            "symbol": sorted(scores.get_column("symbol").to_list())[:4],
            "weight": [0.05, 0.02, -0.03, 0.0],
        }
    ).with_columns(pl.col("date").str.to_date())
    lake.write_partitions("target_weights", book, [as_of], "date")
    assert _run(base, home, [as_of], ["theses"], LENIENT).success
    written = session_theses(lake, book.get_column("date")[0])
    assert sorted(written.get_column("symbol")) == sorted(book.get_column("symbol")[:3])
    assert written.get_column("valid").all()
    for doc in written.get_column("thesis"):
        validate(json.loads(doc))
    top = top_theses(written, book, 1)
    assert [(t["symbol"], t["side"]) for t in top] == [
        (book.get_column("symbol")[0], "long"),
        (book.get_column("symbol")[2], "short"),
    ]
    report = session_report(
        session=book.get_column("date")[0],
        weights=book.with_columns(pl.lit(0.0).alias("score")),
        trade_costs=None,
        backtest_metrics={},
        forecast_vol=0.1,
        model_versions={},
        qc_status="GREEN",
        theses=top,
    )
    md = report_markdown(report)
    assert "Theses of the top picks" in md and f"**{top[0]['symbol']}** (long)" in md


def test_the_gate_refuses_a_thesis_model_below_its_bars(env):
    base, home = env
    mlflow: MlflowResource = base["mlflow"]
    before = mlflow.alias_version("thesis", "champion")
    result = _run(base, home, [KEYS[-2]], MODEL, STRICT)
    assert result.success  # a refusal is a verdict
    (gate,) = result.get_asset_check_evaluations()
    assert not gate.passed and "rft_sharpe" in gate.description
    after = mlflow.alias_version("thesis", "champion")
    assert (before and str(before.version)) == (after and str(after.version))


def test_named_in_the_stacker_it_publishes_oof_on_the_cpcv_sleeves_layout(env):
    """With `thesis` in stacker.sleeves every training row gets a prediction on each CPCV path
    of the layout the equities sleeves use, and the stacker's layout check accepts the pair."""
    base, home = env
    extra = (
        "equities: {models: [lgbm], n_trials: 1, n_estimators: 20, n_groups: 4,"
        " n_test_groups: 1, embargo: 5, half_life_months: null}\n"
        "stacker: {sleeves: [equities_lgbm, thesis]}\n"
    )
    as_of = KEYS[-3]
    run = _run(
        base,
        home,
        [as_of],
        ["equities_lgbm_model", "equities_lgbm_oof", "thesis_model", "thesis_oof"],
        LENIENT,
        extra,
    )
    assert run.success
    lake = Lake(home / "lake")
    layouts = {}
    for name in ("equities_lgbm", "thesis"):
        oof = lake.scan(f"{name}_oof", [as_of]).collect()
        layouts[name] = SplitLayout.from_dict(json.loads(oof.get_column("layout")[0]))
        if name == "thesis":
            assert oof.get_column("oof_path_0").is_not_nan().all()
            assert oof.get_column("oof_path_0").is_between(-1, 1).all()
    assert layouts["thesis"].kind == "cpcv" and len(layouts["thesis"].groups) == 4
    assert common_layout(layouts) == layouts["equities_lgbm"]
