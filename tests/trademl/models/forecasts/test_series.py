"""Series definitions without any model: returns, the realized target, vol/trend, the
ensemble weights, parameters and input validation (all hand-checked, no neuralforecast)."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from trademl.models.forecasts import (
    EnsembleParams,
    ForecastParams,
    add_context,
    ensemble,
    ensemble_weights,
    oos_forecasts,
    realized_target,
    returns_panel,
)

# Six sessions with a holiday-sized calendar gap (Jan 5–7 are not sessions): ordinals
# must stay consecutive. Symbol B misses the 4th session.
DATES = [dt.date(2024, 1, d) for d in (2, 3, 4, 8, 9, 10)]
OPEN_A = [100.0, 102.0, 99.0, 101.0, 104.0, 103.0]
OPEN_B = [50.0, 51.0, 49.0, None, 52.0, 53.0]


def _bars() -> pl.DataFrame:
    rows = [("A", d, o) for d, o in zip(DATES, OPEN_A, strict=True)]
    rows += [("B", d, o) for d, o in zip(DATES, OPEN_B, strict=True) if o is not None]
    sym, date, op = zip(*rows, strict=True)
    return pl.DataFrame({"date": date, "symbol": sym, "open": op, "close": op})


def _col(panel: pl.DataFrame, symbol: str, col: str) -> list[float | None]:
    return panel.filter(pl.col("symbol") == symbol).sort("ds")[col].to_list()


def test_returns_use_consecutive_session_ordinals_and_mask_missing_bars() -> None:
    panel = returns_panel(_bars())
    assert _col(panel, "A", "ds") == [0, 1, 2, 3, 4, 5]
    ra = _col(panel, "A", "r")
    assert ra[0] is None
    for s in range(1, 6):
        assert ra[s] == pytest.approx(OPEN_A[s] / OPEN_A[s - 1] - 1, rel=1e-15)
    rb = _col(panel, "B", "r")
    # B has no bar on Jan 8: r on Jan 8 and on Jan 9 (needs Jan 8's open) are unknown,
    # not zero and not a two-session return.
    assert rb[3] is None and rb[4] is None
    assert rb[5] == pytest.approx(53.0 / 52.0 - 1, rel=1e-15)
    assert _col(panel, "B", "has_bar") == [True, True, True, False, True, True]


def test_realized_target_is_return_two_sessions_ahead() -> None:
    """Decide at d's close, buy d+1's open, sell d+2's open: y_d = open_{d+2}/open_{d+1} − 1."""
    panel = realized_target(returns_panel(_bars()), h=2)
    ya = _col(panel, "A", "y")
    for d in range(4):
        assert ya[d] == pytest.approx(OPEN_A[d + 2] / OPEN_A[d + 1] - 1, rel=1e-15)
    assert ya[4] is None and ya[5] is None  # not known yet
    yb = _col(panel, "B", "y")
    assert yb[1] is None and yb[2] is None  # need B's missing Jan 8 open
    assert yb[3] == pytest.approx(53.0 / 52.0 - 1, rel=1e-15)
    # lag 2 (trade two sessions later): y_d = r_{d+3}
    y3 = _col(realized_target(returns_panel(_bars()), h=3), "A", "y")
    assert y3[0] == pytest.approx(OPEN_A[3] / OPEN_A[2] - 1, rel=1e-15)


def test_vol_and_trend_by_hand() -> None:
    panel = add_context(returns_panel(_bars()), vol_window=3, trend_window=2, input_size=3)
    ra = [OPEN_A[s] / OPEN_A[s - 1] - 1 for s in range(1, 6)]  # r_1 .. r_5
    vol, trend = _col(panel, "A", "vol"), _col(panel, "A", "trend")
    assert vol[0] is None and vol[1] is None  # fewer than 2 returns
    assert vol[2] == pytest.approx(np.std(ra[0:2], ddof=1), rel=1e-12)
    assert vol[5] == pytest.approx(np.std(ra[2:5], ddof=1), rel=1e-12)
    assert trend[1] == pytest.approx(ra[0], rel=1e-12)
    assert trend[5] == pytest.approx((ra[3] + ra[4]) / 2, rel=1e-12)
    # B on Jan 10: window (Jan 8, 9, 10) holds only r on Jan 10 → vol unknown
    assert _col(panel, "B", "vol")[5] is None
    assert _col(panel, "A", "n_obs") == [0, 1, 2, 3, 3, 3]
    assert _col(panel, "B", "n_obs") == [0, 1, 2, 2, 1, 1]


def test_vol_and_trend_ignore_the_future() -> None:
    """Scramble every open after session k: vol/trend at sessions ≤ k must not move."""
    rng = np.random.default_rng(3)
    n, k = 60, 35
    dates = [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(n)]
    opens = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    bars = pl.DataFrame({"date": dates, "symbol": ["X"] * n, "open": opens})
    scrambled = opens.copy()
    scrambled[k + 1 :] *= rng.uniform(0.5, 2.0, n - k - 1)
    bars2 = bars.with_columns(pl.Series("open", scrambled))
    a = add_context(returns_panel(bars), 10, 7, 12).filter(pl.col("ds") <= k)
    b = add_context(returns_panel(bars2), 10, 7, 12).filter(pl.col("ds") <= k)
    assert a.select("vol", "trend", "n_obs").equals(b.select("vol", "trend", "n_obs"))
    later_a = add_context(returns_panel(bars), 10, 7, 12).filter(pl.col("ds") == k + 2)["vol"]
    later_b = add_context(returns_panel(bars2), 10, 7, 12).filter(pl.col("ds") == k + 2)["vol"]
    assert later_a[0] != later_b[0]  # the perturbation is visible once it is in the past


def test_ensemble_weights_closed_form() -> None:
    p = EnsembleParams(vol_low=0.01, vol_high=0.03, w_patchtst_calm=0.8, w_patchtst_stressed=0.2)
    vol = np.array([0.0, 0.01, 0.02, 0.025, 0.03, 0.5, np.nan])
    w = ensemble_weights(vol, p)
    np.testing.assert_allclose(w, [0.8, 0.8, 0.5, 0.35, 0.2, 0.2, 0.5], rtol=1e-12)
    yp = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 4.0])
    yn = np.array([0.0, 0.0, -1.0, 0.0, 0.0, 3.0, 0.0])
    np.testing.assert_allclose(
        ensemble(yp, yn, vol, p), [0.8, 0.8, 0.0, 0.7, 0.2, 2.6, 2.0], atol=1e-15
    )
    # polars in, same numbers out; NaN forecasts stay NaN
    out = ensemble(pl.Series(yp), pl.Series(yn), pl.Series(vol), p)
    np.testing.assert_array_equal(out, ensemble(yp, yn, vol, p))
    assert math.isnan(ensemble([np.nan], [1.0], [0.02], p)[0])
    with pytest.raises(ValueError, match="differ in length"):
        ensemble([1.0, 2.0], [1.0], [0.1, 0.1], p)


def test_params_validation_and_round_trip() -> None:
    p = ForecastParams.tiny(lag=2, refit=5)
    assert p.h == 3 and p.refit_every == 5
    assert ForecastParams.from_dict(p.to_dict()) == p
    assert ForecastParams().refit_every is None and ForecastParams().windows_batch_size == 128
    assert p.fingerprint() != ForecastParams.tiny().fingerprint()
    hw = ForecastParams(accelerator="gpu", devices=2, cpu_threads=None)
    assert hw.fingerprint() == ForecastParams().fingerprint()  # hardware is not the model
    with pytest.raises(ValueError, match="refit"):
        ForecastParams(refit=0)
    with pytest.raises(ValueError, match="vol_low"):
        EnsembleParams(vol_low=0.05, vol_high=0.01)
    with pytest.raises(ValueError, match="input_size"):
        ForecastParams(input_size=0)
    with pytest.raises(ValueError, match="unknown forecast params"):
        ForecastParams.from_dict({"bogus": 1})


def test_bad_inputs_name_the_column_or_session() -> None:
    bars = _bars()
    with pytest.raises(ValueError, match="'open'"):
        oos_forecasts(bars.drop("open"))
    dup = pl.concat([bars, bars.filter((pl.col("symbol") == "A") & (pl.col("date") == DATES[2]))])
    with pytest.raises(ValueError, match=r"session 2024-01-04 symbol 'A'"):
        oos_forecasts(dup)
    neg = bars.with_columns(
        pl.when(pl.col("date") == DATES[1]).then(-1.0).otherwise(pl.col("open")).alias("open")
    )
    with pytest.raises(ValueError, match=r"session 2024-01-03"):
        returns_panel(neg)
    feats = bars.select("date", "symbol", pl.col("close").alias("f1"))
    with pytest.raises(ValueError, match="'symbol'"):
        oos_forecasts(bars, feats.drop("symbol"))
    with pytest.raises(ValueError, match=r"session 2024-01-02 symbol 'B'"):
        oos_forecasts(bars, pl.concat([feats, feats.filter(pl.col("symbol") == "B").head(1)]))
    with pytest.raises(ValueError, match=r"\['y'\] are reserved"):
        oos_forecasts(bars, feats.rename({"f1": "y"}))
    with pytest.raises(ValueError, match="min_train_sessions"):
        oos_forecasts(bars, min_train_sessions=50)


def test_light_import_path_never_loads_torch() -> None:
    """The serving blend and the params must not pull neuralforecast/torch in (5–10 s)."""
    code = (
        "import sys, trademl.models.forecasts as f\n"
        "f.ensemble, f.ForecastParams, f.oos_forecasts, f.live_forecasts\n"
        "bad = [m for m in ('neuralforecast', 'torch', 'pytorch_lightning') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
