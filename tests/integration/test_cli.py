"""The code location through the Dagster CLI, as users and CI run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from resources.lake import Lake

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")

pytestmark = pytest.mark.integration


def _env(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(
        "data:\n  source: synthetic\n  symbols: 8\n  start: 2019-01-02\n  seed: 11\n"
        "equities:\n  train_sessions: 120\n  n_trials: 2\n  n_estimators: 30\n"
        "  n_groups: 4\n  n_test_groups: 1\n  embargo: 5\n"
        "forecasts:\n  train_sessions: 60\n  input_size: 16\n  max_steps: 10\n"
        "  hidden_size: 16\n  patch_len: 8\n  stride: 4\n  nhits_mlp_units: 16\n"
        "  vol_window: 5\n  trend_window: 5\n"
        "policy:\n  train_sessions: 60\n  epochs: 3\n  batch_size: 256\n  hidden: [8]\n"
    )
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    return {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(home / "dagster"),
        "TRADEML_ENV": "local",
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"dagster {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_partition_range_backfill_through_the_cli(tmp_path):
    env = _env(tmp_path)
    _run(
        [
            "asset",
            "materialize",
            "-m",
            "trademl_jobs.definitions",
            "--select",
            "bars,features,labels",
            "--partition-range",
            "2019-01-02...2019-01-15",
        ],
        env,
    )
    lake = Lake(Path(env["TRADEML_HOME"]) / "lake")
    expected = [
        "2019-01-02", "2019-01-03", "2019-01-04", "2019-01-07", "2019-01-08",
        "2019-01-09", "2019-01-10", "2019-01-11", "2019-01-14", "2019-01-15",
    ]  # fmt: skip
    for asset in ("bars", "features", "labels"):
        assert lake.partitions(asset) == expected, asset
    bars = lake.scan("bars", expected).collect()
    assert bars.get_column("symbol").n_unique() == 8
    assert bars.select(pl.len()).item() >= 8 * 10 * 0.95


def test_definitions_validate(tmp_path):
    proc = _run(["definitions", "validate", "-w", "workspace.yaml"], _env(tmp_path))
    assert "Validation successful" in proc.stdout + proc.stderr
