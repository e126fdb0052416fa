"""Point-in-time: features of session d depend only on bars dated ≤ d.

A daily partition computes session d from its lookback window alone; a backfill
computes it from full history. Both, and any later re-run with more (or revised
later) bars, must agree on every feature at d.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from trademl.config import FeatureConfig
from trademl.data.calendar import get_calendar
from trademl.data.synthetic import SyntheticMarket, SyntheticSpec
from trademl.features import build_features, required_history

CAL = get_calendar("XNYS", dt.date(2020, 1, 2))
START = dt.date(2022, 1, 3)
SESSIONS = CAL.sessions_in_range(START, dt.date(2030, 1, 1))[:400]
CS = FeatureConfig().cross_sectional


def market_bars(seed: int, missing: float) -> pl.DataFrame:
    spec = SyntheticSpec(n_symbols=20, seed=seed, start=START, missing_bar_rate=missing)
    return SyntheticMarket(spec, CAL).load(end=SESSIONS[-1])


def features(bars: pl.DataFrame, upto: int, ffill: int, **kw) -> pl.DataFrame:
    """Features built from the bars and sessions known at the close of SESSIONS[upto]."""
    d = SESSIONS[upto]
    return build_features(
        bars.filter(pl.col("date") <= d),
        SESSIONS[: upto + 1],
        cross_sectional=CS,
        ffill_limit=ffill,
        **kw,
    )


def assert_frames_close(a: pl.DataFrame, b: pl.DataFrame, rtol: float = 1e-9) -> None:
    """Same keys, same nulls, values equal to `rtol`."""
    assert a.columns == b.columns
    assert a.select("date", "symbol").equals(b.select("date", "symbol"))
    for name in a.columns[2:]:
        x, y = a.get_column(name), b.get_column(name)
        assert x.is_null().to_list() == y.is_null().to_list(), name
        np.testing.assert_allclose(
            x.drop_nulls().to_numpy(),
            y.drop_nulls().to_numpy(),
            rtol=rtol,
            atol=1e-12,
            err_msg=name,
        )


def assert_identical(a: pl.DataFrame, b: pl.DataFrame, what: str) -> None:
    """Bit-identical frames; checked to a tolerance first so a real look-ahead leak and
    last-ulp noise (non-deterministic float summation) fail with different messages."""
    assert_frames_close(a, b)
    differ = [c for c in a.columns if not a[c].equals(b[c], null_equal=True)]
    assert not differ, f"{what}: {differ} equal to 1e-9 but not bit-identical"


# No shrinking: a failure names its example, and shrinking a last-ulp flake takes minutes.
@settings(max_examples=15, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(
    seed=st.integers(0, 2**31 - 1),
    missing=st.sampled_from([0.0, 0.02, 0.15]),
    ffill=st.sampled_from([0, 1, 5]),
    i=st.integers(0, len(SESSIONS) - 101),
)
def test_features_up_to_d_do_not_depend_on_later_bars(
    seed: int, missing: float, ffill: int, i: int
) -> None:
    bars = market_bars(seed, missing)
    d = SESSIONS[i]
    at_d = features(bars, i, ffill)
    assert at_d.height > 0 and at_d["date"].max() == d
    for later in (5, 100):
        again = features(bars, i + later, ffill).filter(pl.col("date") <= d)
        assert_identical(again, at_d, f"features ≤ {d} with {later} more sessions of bars")


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    missing=st.sampled_from([0.0, 0.02, 0.15]),
    ffill=st.sampled_from([0, 2, 5]),
    back=st.integers(0, 60),
)
def test_partition_window_matches_full_history(
    seed: int, missing: float, ffill: int, back: int
) -> None:
    """`required_history` sessions ending at d give the same features at d as all history."""
    bars = market_bars(seed, missing)
    i = len(SESSIONS) - 1 - back
    d = SESSIONS[i]
    window = SESSIONS[i - required_history(ffill) + 1 : i + 1]
    assert window[-1] == d and len(window) == required_history(ffill)
    partition = build_features(
        bars.filter(pl.col("date").is_between(window[0], d)),
        window,
        cross_sectional=CS,
        ffill_limit=ffill,
        out_sessions=[d],
    )
    backfill = features(bars, i, ffill).filter(pl.col("date") == d)
    assert partition.height == backfill.height > 0
    # Every feature is defined somewhere at d, so the comparison is not vacuous.
    assert all(partition[c].null_count() < partition.height for c in partition.columns)
    assert_frames_close(partition, backfill)


def test_out_sessions_selects_rows_without_changing_them() -> None:
    bars = market_bars(7, 0.02)
    full = features(bars, len(SESSIONS) - 1, 5)
    pick = [SESSIONS[3], SESSIONS[260], SESSIONS[-1]]
    some = features(bars, len(SESSIONS) - 1, 5, out_sessions=pick)
    assert_identical(some, full.filter(pl.col("date").is_in(pick)), "out_sessions subset")
    assert some["date"].unique().sort().to_list() == pick


def test_revising_later_bars_does_not_change_earlier_features() -> None:
    bars = market_bars(11, 0.02)
    i = 300
    d = SESSIONS[i]
    rng = np.random.default_rng(0)
    later = bars.filter(pl.col("date") > d)
    shock = pl.Series(np.exp(rng.normal(0.0, 0.3, later.height)))
    later = later.with_columns(
        *[pl.col(c) * shock for c in ("open", "high", "low", "close")],
        pl.col("volume") * 10,
    ).filter(pl.Series(rng.random(later.height) > 0.3))  # also drop 30% of later bars
    newcomer = later.filter(pl.col("symbol") == later["symbol"][0]).with_columns(
        pl.lit("ZNEW").alias("symbol")
    )  # and a name that only starts trading after d
    perturbed = pl.concat([bars.filter(pl.col("date") <= d), later, newcomer])
    before = features(bars, len(SESSIONS) - 1, 5)
    after = features(perturbed, len(SESSIONS) - 1, 5)
    assert not before.filter(pl.col("date") > d).equals(after.filter(pl.col("date") > d))
    assert_identical(
        after.filter(pl.col("date") <= d), before.filter(pl.col("date") <= d), "perturbed > d"
    )
    assert "ZNEW" not in after.filter(pl.col("date") <= d)["symbol"].to_list()


def test_rebuilding_the_same_bars_is_bit_identical() -> None:
    """Idempotence: the same bars and sessions give the same bits, run after run."""
    bars = market_bars(5, 0.02)
    first = features(bars, len(SESSIONS) - 1, 5)
    for run in range(8):
        assert_identical(features(bars, len(SESSIONS) - 1, 5), first, f"rebuild {run + 1}")
