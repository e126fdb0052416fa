"""The sequence forecasters: point-in-time samples; the LSTM and PatchTST learn a planted
weekly signal (below the zero baseline, positive rank IC, gate passes) and refuse noise;
PatchTST reads an extra channel (a planted "sentiment" only it carries) and without it finds
nothing; a finetune starts from the weights it is given; the saved bytes predict the same."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from trademl.models.forecasts.sequence import (
    SequenceParams,
    TrainedForecaster,
    forecaster_decision,
    train_forecaster,
)
from trademl.models.forecasts.weekly import read_channels, weekly_samples

PARAMS = SequenceParams(seq_len=40, horizon=5, hidden=16, max_epochs=25, patience=4, seed=0)
PATCHTST = SequenceParams(
    kind="patchtst",
    seq_len=40,
    patch_len=8,
    d_model=16,
    n_layers=2,
    n_heads=2,
    max_epochs=25,
    patience=4,
    seed=0,
)


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
def planted() -> tuple[TrainedForecaster, object]:
    bars, days = market(True)
    samples = weekly_samples(bars, days, seq_len=PARAMS.seq_len, horizon=PARAMS.horizon)
    return train_forecaster(samples, PARAMS), samples


def test_learns_a_planted_weekly_signal_and_passes_its_gate(planted):
    model, _ = planted
    m = model.metrics
    assert m["val_mse"] < m["zero_mse"] and m["val_rank_ic"] > 0.05, m
    assert forecaster_decision(m, None, min_gain=0.002, min_ic_t=2.0).promote
    # a prior champion that did better on the same weeks keeps its place
    worse = forecaster_decision(m, m["val_mse"] * 0.9, min_gain=0.002, min_ic_t=2.0)
    assert not worse.promote and "val_mse_vs_champion" in worse.summary()


def test_refuses_noise():
    bars, days = market(False, seed=1)
    samples = weekly_samples(bars, days, seq_len=PARAMS.seq_len, horizon=PARAMS.horizon)
    m = train_forecaster(samples, PARAMS).metrics
    assert not forecaster_decision(m, None, min_gain=0.002, min_ic_t=2.0).promote, m


def test_a_finetune_starts_from_the_given_weights_and_bytes_round_trip(planted):
    model, samples = planted
    again = TrainedForecaster.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.predict(samples.x[:50]), model.predict(samples.x[:50]))
    tuned = train_forecaster(samples, PARAMS, init=model, max_epochs=1, lr=1e-9)
    # a learning rate of ~0 leaves the champion's weights: the finetune started from them
    np.testing.assert_allclose(
        tuned.predict(samples.x[:50]), model.predict(samples.x[:50]), atol=1e-6
    )
    np.testing.assert_array_equal(tuned.mean, model.mean)
    np.testing.assert_array_equal(tuned.std, model.std)


def test_patchtst_learns_the_planted_signal_too(tmp_path):
    bars, days = market(True)
    samples = weekly_samples(bars, days, seq_len=40, horizon=5)
    m = train_forecaster(samples, PATCHTST).metrics
    assert forecaster_decision(m, None, min_gain=0.002, min_ic_t=2.0).promote, m


def sentiment_market(n_names: int = 60, n_days: int = 900, seed: int = 2):
    """Returns with no memory; a weekly "sentiment" published at each week's last session
    drives the next five sessions' drift (0.002 per unit per session) — only that channel
    says anything about next week. Long format, as a files source supplies it."""
    rng = np.random.default_rng(seed)
    bars, days = market(False, n_names=n_names, n_days=n_days, seed=seed)
    weeks = np.array([d.isocalendar()[:2] for d in days])
    last = np.r_[(weeks[1:] != weeks[:-1]).any(axis=1), True]
    sent = np.zeros((n_days, n_names))
    drift = np.zeros((n_days, n_names))
    current = rng.standard_normal(n_names)
    for t in range(n_days):
        sent[t] = current
        if last[t]:
            current = rng.standard_normal(n_names)  # next week's, published at this close
            sent[t] = current
            drift[t + 1 : t + 6] = 0.002 * current
    r = np.log(bars.sort("date", "symbol").get_column("close").to_numpy().reshape(n_days, n_names))
    r = np.diff(r, axis=0, prepend=r[:1]) + drift
    closes = 100 * np.exp(np.cumsum(r, axis=0))
    bars = bars.sort("date", "symbol").with_columns(pl.Series("close", closes.ravel()))
    extra = pl.DataFrame(
        {
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), n_names),
            "symbol": [f"S{i:02d}" for i in range(n_names)] * n_days,
            "channel": "sentiment",
            "value": sent.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    return bars, days, extra


def test_patchtst_reads_an_extra_channel_and_without_it_finds_nothing(tmp_path):
    bars, days, extra = sentiment_market()
    path = tmp_path / "channels.parquet"
    extra.write_parquet(path)
    read = read_channels(str(path), ["ret", "sentiment"], days[0], days[-1])
    with_it = weekly_samples(
        bars, days, seq_len=40, horizon=5, channels=["ret", "sentiment"], extra=read
    )
    assert with_it.x.shape[2] == 2
    m = train_forecaster(with_it, dataclasses.replace(PATCHTST, n_channels=2)).metrics
    assert forecaster_decision(m, None, min_gain=0.002, min_ic_t=2.0).promote, m
    without = weekly_samples(bars, days, seq_len=40, horizon=5, channels=["ret"])
    m0 = train_forecaster(without, PATCHTST).metrics
    assert not forecaster_decision(m0, None, min_gain=0.002, min_ic_t=2.0).promote, m0
    with pytest.raises(ValueError, match="fundamentals"):
        read_channels(str(path), ["ret", "fundamentals"], days[0], days[-1])
    with pytest.raises(ValueError, match="channels_path"):
        read_channels(None, ["sentiment"], days[0], days[-1])


def test_the_validation_weeks_choose_nothing(planted):
    """Early stopping reads the last training weeks, not the validation weeks the gate reads:
    scrambling the validation targets leaves the trained weights exactly as they were."""
    from trademl.models.forecasts.sequence import split_by_date
    from trademl.models.forecasts.weekly import WeeklySamples

    _, samples = planted
    small = dataclasses.replace(PARAMS, max_epochs=4, patience=1)
    a = train_forecaster(samples, small)
    _, va = split_by_date(samples, small.val_frac)
    y = samples.y.copy()
    y[va] = np.random.default_rng(9).permutation(y[va]) * 3.0
    b = train_forecaster(
        WeeklySamples(samples.x, y, samples.date, samples.known, samples.symbol), small
    )
    for k, v in a.state.items():
        np.testing.assert_array_equal(v.numpy(), b.state[k].numpy())
    assert a.metrics["epochs"] == b.metrics["epochs"]
    assert a.metrics["val_mse"] != b.metrics["val_mse"]  # the gate does read them
