"""OOS and live forecasts with tiny PatchTST/NHITS models: point in time, determinism,
OOS↔live parity of the blend, the realized target, save/load, and no lightning_logs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trademl.data.calendar import get_calendar
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
from trademl.models.forecasts import (
    ForecastParams,
    ensemble,
    fit_forecasters,
    live_forecasts,
    load_forecasters,
    oos_forecasts,
    save_forecasters,
)

START = dt.date(2021, 1, 4)
N_SHORT, N_LONG, TRAIN_IDX, REFIT = 130, 145, 99, 15
PARAMS = ForecastParams.tiny(max_steps=6)
TOL = 1e-6
MODEL_COLS = ["y_hat_patchtst", "y_hat_nhits", "y_hat"]


def _features(bars: pl.DataFrame) -> pl.DataFrame:
    """Two point-in-time features from each symbol's own bars (warm-up nulls kept)."""
    return bars.sort("symbol", "date").select(
        "date",
        "symbol",
        (pl.col("close") / pl.col("close").shift(5).over("symbol") - 1).alias("mom_5"),
        ((pl.col("high") - pl.col("low")) / pl.col("close")).alias("range"),
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cal = get_calendar("XNYS", dt.date(2020, 1, 2))
    sessions = cal.sessions_in_range(START, cal.offset(START, N_LONG - 1))
    market = SyntheticMarket(SyntheticSpec(n_symbols=4, start=START, seed=11), cal)
    long = market.load(end=sessions[-1])
    # Planted holes: one before the training cutoff, two after it.
    holes = [("S0002", sessions[40]), ("S0003", sessions[110]), ("S0003", sessions[111])]
    for sym, d in holes:
        long = long.filter(~((pl.col("symbol") == sym) & (pl.col("date") == d)))
    short = long.filter(pl.col("date") <= sessions[N_SHORT - 1])
    train_end = sessions[TRAIN_IDX]
    cwd = tmp_path_factory.mktemp("nf_cwd")
    old = Path.cwd()
    os.chdir(cwd)  # any lightning_logs/ would land here
    try:
        fs, fl = _features(short), _features(long)
        refit = dataclasses.replace(PARAMS, refit=REFIT)
        out = {
            "sessions": sessions,
            "short": short,
            "long": long,
            "feats_short": fs,
            "train_end": train_end,
            "cwd": cwd,
            "base": oos_forecasts(short, fs, PARAMS, train_end=train_end),
            "again": oos_forecasts(short, fs, PARAMS, train_end=train_end),
            "long_run": oos_forecasts(long, fl, PARAMS, train_end=train_end),
            "nofeat": oos_forecasts(short, None, PARAMS, train_end=train_end),
            "refit_short": oos_forecasts(short, fs, refit, train_end=train_end),
            "refit_long": oos_forecasts(long, fl, refit, train_end=train_end),
            "forecasters": fit_forecasters(long, fl, PARAMS, as_of=train_end),
        }
    finally:
        os.chdir(old)
    return out


def _joined(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    return a.join(b, on=["date", "symbol"], how="inner", suffix="_b")


def _max_diff(j: pl.DataFrame, cols: list[str]) -> float:
    return max(float((j[c] - j[f"{c}_b"]).abs().max()) for c in cols)


def test_oos_rows_and_realized_target_by_hand(world: dict) -> None:
    base, short, sessions = world["base"], world["short"], world["sessions"]
    idx = {d: i for i, d in enumerate(sessions)}
    opens = {(r["symbol"], r["date"]): r["open"] for r in short.iter_rows(named=True)}
    # one row per (session ≥ train_end, symbol with a bar there), nothing else
    expected = short.filter(pl.col("date") >= world["train_end"]).select("date", "symbol")
    assert base.height == expected.height == base.unique(["date", "symbol"]).height
    assert (
        base.select("date", "symbol").sort("date", "symbol").equals(expected.sort("date", "symbol"))
    )
    assert base["date"].min() == world["train_end"] and base["date"].max() == sessions[N_SHORT - 1]
    assert set(base["train_end"].to_list()) == {world["train_end"]}
    assert base.select(MODEL_COLS).null_count().sum_horizontal()[0] == 0
    n_known = 0
    for row in base.iter_rows(named=True):
        i = idx[row["date"]]
        o1 = opens.get((row["symbol"], sessions[i + 1])) if i + 1 < N_SHORT else None
        o2 = opens.get((row["symbol"], sessions[i + 2])) if i + 2 < N_SHORT else None
        if o1 is None or o2 is None:
            assert row["y"] is None, row
        else:
            n_known += 1
            assert row["y"] == pytest.approx(o2 / o1 - 1, rel=1e-12)
    assert n_known > 100  # 31 sessions × 4 symbols less the planted holes and the last two


def test_same_inputs_give_identical_numbers(world: dict) -> None:
    assert world["base"].equals(world["again"])


def test_appending_sessions_leaves_earlier_forecasts_unchanged(world: dict) -> None:
    base, long_run = world["base"], world["long_run"]
    j = _joined(base, long_run)
    assert j.height == base.height and long_run.height > base.height
    assert _max_diff(j, [*MODEL_COLS, "vol", "trend"]) <= TOL
    known = j.filter(pl.col("y").is_not_null())
    assert (known["y"] == known["y_b"]).all()
    # the newest sessions of the short run learn their y only from the longer data
    assert j.filter(pl.col("y").is_null() & pl.col("y_b").is_not_null()).height > 0


def test_refit_cadence_is_anchored_to_train_end(world: dict) -> None:
    rs, rl, sessions = world["refit_short"], world["refit_long"], world["sessions"]
    cutoffs = sorted(set(rl["train_end"].to_list()))
    assert cutoffs == [sessions[i] for i in range(TRAIN_IDX, N_LONG, REFIT)]
    # each forecast's model was trained on sessions ≤ train_end ≤ its own session,
    # and at most REFIT − 1 sessions earlier
    lag = rl.with_columns(
        pl.col("date").map_elements(sessions.index, return_dtype=pl.Int64).alias("i"),
        pl.col("train_end").map_elements(sessions.index, return_dtype=pl.Int64).alias("t"),
    )
    assert ((lag["i"] - lag["t"]) >= 0).all() and ((lag["i"] - lag["t"]) < REFIT).all()
    j = _joined(rs, rl)
    assert j.height == rs.height
    assert _max_diff(j, MODEL_COLS) <= TOL
    assert (j["model_version"] == j["model_version_b"]).all()
    # the first block uses the same models as the train-once run
    first_block = rs.filter(pl.col("train_end") == world["train_end"])
    first = _joined(first_block, world["base"])
    assert first.height == first_block.height >= 4 * REFIT - 2
    assert _max_diff(first, MODEL_COLS) <= TOL
    later = _joined(rs.filter(pl.col("train_end") > world["train_end"]), world["base"])
    assert _max_diff(later, ["y_hat_nhits"]) > TOL  # a refit really changed the model


def test_live_forecasts_match_oos_rows_and_blend(world: dict) -> None:
    """Train at train_end, serve at d: the same numbers as the OOS row for d."""
    base, short, fs, sessions = (
        world["base"],
        world["short"],
        world["feats_short"],
        world["sessions"],
    )
    fc = world["forecasters"]
    # OOS blend is exactly `ensemble` of its own columns
    np.testing.assert_array_equal(
        base["y_hat"].to_numpy(),
        ensemble(base["y_hat_patchtst"], base["y_hat_nhits"], base["vol"], PARAMS.ensemble),
    )
    for i in (TRAIN_IDX, TRAIN_IDX + 7, N_SHORT - 1):
        d = sessions[i]
        live = live_forecasts(fc, short, fs, as_of=d)
        oos_d = base.filter(pl.col("date") == d)
        j = _joined(live, oos_d)
        assert j.height == oos_d.height == live.height
        assert _max_diff(j, MODEL_COLS) <= TOL
        assert _max_diff(j, ["vol", "trend", "n_obs", "w_patchtst"]) == 0.0
        np.testing.assert_array_equal(
            live["y_hat"].to_numpy(),
            ensemble(live["y_hat_patchtst"], live["y_hat_nhits"], live["vol"], PARAMS.ensemble),
        )
        # serving from a short lookback of bars gives the same forecast
        lookback = sessions[i - PARAMS.input_size - 2]
        recent = live_forecasts(
            fc,
            short.filter(pl.col("date") >= lookback),
            fs.filter(pl.col("date") >= lookback),
            as_of=d,
        )
        assert _max_diff(_joined(recent, live), [*MODEL_COLS, "vol", "trend"]) <= TOL
    assert (live["model_version"] == fc.version).all()


def test_patchtst_ignores_features_and_nhits_uses_them(world: dict) -> None:
    j = _joined(world["nofeat"], world["base"])
    assert j.height == world["base"].height
    assert _max_diff(j, ["y_hat_patchtst"]) <= TOL
    assert _max_diff(j, ["y_hat_nhits"]) > 1e-4
    assert (j["model_version"] != j["model_version_b"]).all()


def test_save_load_round_trip(world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fc = world["forecasters"]
    save_forecasters(fc, tmp_path / "model")
    loaded = load_forecasters(tmp_path / "model")
    assert (loaded.params, loaded.train_end, loaded.features) == (
        fc.params,
        fc.train_end,
        fc.features,
    )
    assert loaded.version == fc.version
    d = world["sessions"][N_SHORT - 1]
    a = live_forecasts(fc, world["short"], world["feats_short"], as_of=d)
    b = live_forecasts(loaded, world["short"], world["feats_short"], as_of=d)
    assert a.equals(b)
    on_cpu = load_forecasters(tmp_path / "model", accelerator="cpu")
    assert on_cpu.version == fc.version
    assert live_forecasts(on_cpu, world["short"], world["feats_short"], as_of=d).equals(a)
    assert not (tmp_path / "lightning_logs").exists()


def test_no_lightning_logs_written(world: dict) -> None:
    assert not (world["cwd"] / "lightning_logs").exists()
    assert list(world["cwd"].iterdir()) == []


def test_live_guards(world: dict) -> None:
    fc, short, fs = world["forecasters"], world["short"], world["feats_short"]
    with pytest.raises(ValueError, match="precedes the models' training cutoff"):
        live_forecasts(fc, short, fs, as_of=world["sessions"][TRAIN_IDX - 1])
    with pytest.raises(ValueError, match="'range'"):
        live_forecasts(fc, short, fs.drop("range"))
    with pytest.raises(FileNotFoundError):
        load_forecasters(world["cwd"])


def test_training_and_serving_print_nothing(world: dict, capfd: pytest.CaptureFixture) -> None:
    bars = world["short"].filter(pl.col("symbol").is_in(["S0001", "S0002"]))
    fc = fit_forecasters(bars, None, PARAMS)
    live = live_forecasts(fc, bars)
    out, err = capfd.readouterr()
    assert live.height == 2
    assert (out, err) == ("", "")
