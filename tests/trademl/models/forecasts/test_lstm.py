"""The LSTM weekly forecaster: point-in-time samples, a planted weekly signal learned (below
the zero baseline, positive rank IC, gate passes), noise refused, a finetune starts from the
weights it is given, and the saved bytes predict the same."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trademl.models.forecasts.lstm import LSTMParams, TrainedLSTM, lstm_decision, train_lstm
from trademl.models.forecasts.weekly import weekly_samples

PARAMS = LSTMParams(seq_len=40, horizon=5, hidden=16, max_epochs=25, patience=4, seed=0)


def market(planted: bool, n_names: int = 60, n_days: int = 900, seed: int = 0):
    """Daily log returns r = μ_i(t) + ε with a slow drift μ (AR(1), φ = 0.995) per name when
    `planted` (a name's recent returns reveal its next week's), μ = 0 otherwise."""
    rng = np.random.default_rng(seed)
    days = [
        d
        for d in (dt.date(2020, 1, 1) + dt.timedelta(i) for i in range(n_days * 7 // 5 + 10))
        if d.weekday() < 5
    ][:n_days]
    mu = np.zeros(n_names)
    closes = np.empty((n_days, n_names))
    level = np.full(n_names, 100.0)
    for t in range(n_days):
        if planted:
            mu = 0.995 * mu + 0.1 * 0.004 * rng.standard_normal(n_names)
        level = level * np.exp(mu + 0.015 * rng.standard_normal(n_names))
        closes[t] = level
    bars = pl.DataFrame(
        {
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), n_names),
            "symbol": [f"S{i:02d}" for i in range(n_names)] * n_days,
            "close": closes.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    return bars, days


def test_samples_are_point_in_time_and_later_bars_change_nothing():
    bars, days = market(True, n_names=5, n_days=300)
    cut = days[200]
    early = weekly_samples(bars.filter(pl.col("date") <= cut), days[:201], seq_len=40, horizon=5)
    later = weekly_samples(bars, days, seq_len=40, horizon=5, as_of=cut)
    assert early.n > 0 and early.n == later.n
    np.testing.assert_array_equal(early.x, later.x)
    np.testing.assert_array_equal(early.y, later.y)
    assert (later.known <= np.datetime64(cut)).all()
    # hand-check one sample: the target is the log return of the 5 sessions after the week end
    i = 0
    sym, d = later.symbol[i], later.date[i].astype(object)
    closes = bars.filter(pl.col("symbol") == sym).sort("date").get_column("close").to_numpy()
    t = days.index(d)
    assert later.y[i] == pytest.approx(np.log(closes[t + 5] / closes[t]))
    assert later.x[i, -1, 0] == pytest.approx(np.log(closes[t] / closes[t - 1]), rel=1e-5)
    assert d.isoweekday() == 5 or days[t + 1].isocalendar()[1] != d.isocalendar()[1]


@pytest.fixture(scope="module")
def planted() -> tuple[TrainedLSTM, object]:
    bars, days = market(True)
    samples = weekly_samples(bars, days, seq_len=PARAMS.seq_len, horizon=PARAMS.horizon)
    return train_lstm(samples, PARAMS), samples


def test_learns_a_planted_weekly_signal_and_passes_its_gate(planted):
    model, _ = planted
    m = model.metrics
    assert m["val_mse"] < m["zero_mse"] and m["val_rank_ic"] > 0.05, m
    assert lstm_decision(m, None, min_gain=0.002, min_ic_t=2.0).promote
    # a prior champion that did better on the same weeks keeps its place
    worse = lstm_decision(m, m["val_mse"] * 0.9, min_gain=0.002, min_ic_t=2.0)
    assert not worse.promote and "val_mse_vs_champion" in worse.summary()


def test_refuses_noise():
    bars, days = market(False, seed=1)
    samples = weekly_samples(bars, days, seq_len=PARAMS.seq_len, horizon=PARAMS.horizon)
    m = train_lstm(samples, PARAMS).metrics
    assert not lstm_decision(m, None, min_gain=0.002, min_ic_t=2.0).promote, m


def test_a_finetune_starts_from_the_given_weights_and_bytes_round_trip(planted):
    model, samples = planted
    again = TrainedLSTM.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.predict(samples.x[:50]), model.predict(samples.x[:50]))
    tuned = train_lstm(samples, PARAMS, init=model, max_epochs=1, lr=1e-9)
    # a learning rate of ~0 leaves the champion's weights: the finetune started from them
    np.testing.assert_allclose(
        tuned.predict(samples.x[:50]), model.predict(samples.x[:50]), atol=1e-6
    )
    assert (tuned.mean, tuned.std) == (model.mean, model.std)
