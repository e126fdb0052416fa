"""Serving: ONNX graph vs the torch policy, and save/load of the torch policy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
import torch

from tests.trademl.models.policy.synthetic import planted_frame
from trademl.models.policy import (
    GRPOParams,
    GRPOSizer,
    OnnxPolicy,
    load_policy,
    save_policy,
    to_onnx,
)
from trademl.models.policy.serving import ONNX_OPSET

PARAMS = GRPOParams(
    risk_aversion=10.0,
    cost_bps=0.0,
    hidden=(16, 8),
    epochs=3,
    batch_size=512,
    num_threads=1,
    seed=3,
)


def _dated(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        (pl.lit(dt.date(2020, 1, 1)) + pl.duration(days=pl.col("session"))).alias("session"),
        liq=pl.col("vol") * 50 + pl.col("trend"),
    )


@pytest.fixture(scope="module")
def model_and_rows() -> tuple[GRPOSizer, pl.DataFrame]:
    train, _ = planted_frame(10, 300, seed=11, risk_aversion=10.0)
    rows, _ = planted_frame(10, 50, seed=12, risk_aversion=10.0, start=300)
    model = GRPOSizer(params=PARAMS, extra_features=["liq"]).fit(_dated(train))
    rows = _dated(rows)
    # a non-finite state and a zero forecast
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(np.nan).otherwise("vol").alias("vol"),
        pl.when(pl.int_range(pl.len()) == 1).then(0.0).otherwise("y_hat").alias("y_hat"),
    )
    return model, rows


def test_onnx_matches_torch(model_and_rows) -> None:
    model, rows = model_and_rows
    blob = to_onnx(model)
    proto = onnx.load_from_string(blob)
    assert proto.opset_import[0].version >= ONNX_OPSET
    scorer = OnnxPolicy(blob)
    assert scorer.feature_names == ("y_hat", "vol", "trend", "liq")
    native, onnx_act = model.act(rows), scorer.act(rows)
    assert onnx_act.shape == (rows.height,) and onnx_act.dtype == np.float64
    assert np.isnan(native[0]) and np.isnan(onnx_act[0])
    assert np.nanstd(native) > 0.02  # a policy that predicts a constant would prove nothing
    np.testing.assert_allclose(onnx_act, native, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scorer.positions(rows), model.positions(rows), atol=1e-5)
    assert scorer.positions(rows)[1] == 0.0  # zero forecast: flat
    # the array path in feature order gives the same; standardization is inside the graph
    arr = rows.select(scorer.feature_names).to_numpy()
    np.testing.assert_allclose(scorer.act(arr), onnx_act, atol=0)
    # dynamic batch size
    assert scorer.act(arr[:1]).shape == (1,)


def test_onnx_scorer_rejects_bad_input(model_and_rows, tmp_path: Path) -> None:
    model, rows = model_and_rows
    path = tmp_path / "policy.onnx"
    path.write_bytes(to_onnx(model))
    scorer = OnnxPolicy(path)
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        scorer.act(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="liq"):
        scorer.act(rows.drop("liq"))


def test_save_load_roundtrip(model_and_rows, tmp_path: Path) -> None:
    model, rows = model_and_rows
    save_policy(model, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    np.testing.assert_array_equal(loaded.act(rows), model.act(rows))
    assert loaded.params == model.params
    assert loaded.feature_names_ == model.feature_names_
    np.testing.assert_array_equal(loaded.state_mean_, model.state_mean_)
    np.testing.assert_array_equal(loaded.state_std_, model.state_std_)
    for attr in ("vol_target_", "best_epoch_", "n_train_", "n_val_"):
        assert getattr(loaded, attr) == getattr(model, attr)
    assert loaded.val_end_ == model.val_end_ and isinstance(loaded.val_end_, dt.date)
    assert [h["val_sharpe"] for h in loaded.history_] == pytest.approx(
        [h["val_sharpe"] for h in model.history_]
    )
    sd = torch.load(tmp_path / "p" / "policy.pt", weights_only=True)
    assert "state_mean" in sd and "state_std" in sd  # standardization travels with the weights
    # a loaded policy exports the same graph behaviour
    np.testing.assert_allclose(OnnxPolicy(to_onnx(loaded)).act(rows), model.act(rows), atol=1e-5)


def test_load_rejects_mismatched_features(model_and_rows, tmp_path: Path) -> None:
    model, _ = model_and_rows
    save_policy(model, tmp_path / "q")
    meta = tmp_path / "q" / "policy.json"
    meta.write_text(meta.read_text().replace('"y_hat"', '"forecast"'))
    with pytest.raises(ValueError, match="features"):
        load_policy(tmp_path / "q")
    assert dataclasses.asdict(model.params)["hidden"] == (16, 8)


def test_serving_path_never_loads_torch() -> None:
    """The daily scorer (and the package's light names) must not pull torch in (≈3 s)."""
    code = (
        "import sys, trademl.models.policy as p\n"
        "from trademl.models.policy.onnx_policy import OnnxPolicy\n"
        "p.OnnxPolicy, p.position\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
