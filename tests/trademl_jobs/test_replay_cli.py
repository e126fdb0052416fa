"""`python -m trademl_jobs.replay`: the daily loop over a files source's history, reconciled."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trademl.data.calendar import get_calendar
from trademl_jobs import replay

CAL = get_calendar("XNYS", dt.date(2022, 1, 3))
DAYS = CAL.sessions_in_range(dt.date(2023, 1, 3), dt.date(2023, 4, 28))
SYMS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    close = np.array([20.0, 45.0, 80.0, 130.0])
    bars, weights = [], []
    for i, d in enumerate(DAYS):
        open_ = close * np.exp(0.005 * rng.standard_normal(4))
        close = open_ * np.exp(0.015 * rng.standard_normal(4))
        vol = 1e6 * np.exp(0.3 * rng.standard_normal(4))
        for j, s in enumerate(SYMS):
            hi, lo = max(open_[j], close[j]) * 1.004, min(open_[j], close[j]) * 0.996
            bars.append((d, s, open_[j], hi, lo, close[j], vol[j]))
            w = 0.2 * np.sin(2 * np.pi * (i / 23 + j / 4))
            weights.append((d, s, w, 2e5 * (1 + j), 0.015))
    cols = ["date", "symbol", "open", "high", "low", "close", "volume"]
    data = tmp_path / "bars.parquet"
    pl.DataFrame(bars, schema=cols, orient="row").write_parquet(data)
    wpath = tmp_path / "weights.parquet"
    wcols = ["date", "symbol", "weight", "adv", "sigma"]
    pl.DataFrame(weights, schema=wcols, orient="row").write_parquet(wpath)
    cfg = tmp_path / "replay.yaml"
    cfg.write_text(
        "extends: local\n"
        f"data: {{source: files, path: {data}, start: 2023-01-03, symbols: {SYMS}}}\n"
        "execution: {broker: replay, capital: 1000000, lot_size: 1, min_notional: 0,"
        " max_turnover: 1.1}\n"
    )
    monkeypatch.setenv("TRADEML_CONFIG", str(cfg))
    monkeypatch.setenv("TRADEML_HOME", str(tmp_path / "home"))
    return {"weights": wpath, "home": tmp_path / "home"}


def test_the_cli_replays_history_and_prints_the_reconciliation(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    start, end = DAYS[25], DAYS[-2]
    argv = ["--start", str(start), "--end", str(end), "--weights", str(files["weights"])]
    assert replay.main(argv) == 0
    text = capsys.readouterr().out
    assert text.rstrip().endswith("reconciled with the backtest")
    out = json.loads(text[: text.rindex("}") + 1])
    assert out["sessions"] == len(CAL.sessions_in_range(start, end))
    assert out["booked_through"] == str(DAYS[-1]) and out["halted_sessions"] == 0
    assert out["filled"] == out["orders"] > 0 and out["rejected"] == 0
    assert out["exact_max_abs_diff"] < replay.EXACT_TOL
    assert out["replay_pnl"] == pytest.approx(out["backtest_on_fills_pnl"], abs=1e-5)
    assert abs(out["rounding_diff"]) <= out["rounding_bound"] < 0.05 * abs(out["replay_pnl"])
    assert out["equity"] == pytest.approx(1_000_000 + out["replay_pnl"])
    assert Path(out["folder"]) == files["home"] / "broker" / "replay"
    assert out["replayed_now"] == out["sessions"]
    # The same range again resumes past what is done: nothing is replayed or filled twice.
    assert replay.main(argv) == 0
    again = capsys.readouterr().out
    assert json.loads(again[: again.rindex("}") + 1]) == out | {"replayed_now": 0}


def test_the_broker_resource_builds_the_replay_only_when_asked(tmp_path: Path) -> None:
    from resources.broker import BrokerResource
    from trademl.config import Settings
    from trademl.execution.brokers import DryRunBroker
    from trademl.execution.replay import ReplayBroker
    from trademl.execution.replay_run import FrameSource

    d0, d1 = DAYS[:2]
    assert isinstance(BrokerResource().get_broker(tmp_path, session=d0), DryRunBroker)
    bars = pl.DataFrame(
        {"date": [d0, d1], "symbol": ["A", "A"], "open": [9.0, 10.0], "close": [9.5, 11.0]}
    )
    res = BrokerResource(kind="replay")
    brk = res.get_broker(tmp_path, session=d0, source=FrameSource(bars), calendar=CAL)
    assert isinstance(brk, ReplayBroker) and brk.folder == tmp_path / "replay"
    assert brk.sizing_prices() == {"A": 10.0}
    view = res.get_broker(tmp_path)  # what the blotter asset opens: no source needed
    assert isinstance(view, ReplayBroker) and view.as_of == d0
    assert Settings.model_validate({"execution": {"broker": "replay"}}).execution.broker == "replay"
