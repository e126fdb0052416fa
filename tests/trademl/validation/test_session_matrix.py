"""The numpy per-session statistics equal the polars references, ties and gaps included."""

from __future__ import annotations

import numpy as np
import pytest

from trademl.validation.metrics import ic_by_session, long_short_returns
from trademl.validation.session_matrix import SessionMatrix


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 40, size=60)  # ragged sessions, some too small to judge
    session = np.repeat(np.arange(60) * 3 + 7, sizes)
    n = session.size
    pred = np.round(rng.normal(size=n), 1)  # many ties, as shallow trees produce
    y = rng.normal(scale=0.02, size=n)
    y[rng.random(n) < 0.05] = np.nan
    pred[rng.random(n) < 0.05] = np.nan
    pred[session == 7] = 1.0  # a constant session: no IC
    perm = rng.permutation(n)  # rows in any order
    return session[perm], pred[perm], y[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_ic_and_long_short_equal_the_polars_references(seed):
    session, pred, y = _data(seed)
    sm = SessionMatrix(session)
    ref = ic_by_session(pred, y, session)
    assert sm.sessions.tolist() == ref.get_column("session").to_list()
    np.testing.assert_allclose(
        sm.rank_ic(pred, y), ref.get_column("rank_ic").to_numpy(), rtol=1e-10, equal_nan=True
    )
    ls = long_short_returns(pred, y, session, spread_bps=5.0)
    np.testing.assert_allclose(
        sm.long_short(pred, y, spread_bps=5.0),
        ls.get_column("ret").to_numpy(),
        rtol=1e-10,
        atol=1e-15,
        equal_nan=True,
    )


def test_average_ranks_by_hand():
    m = np.array([[3.0, 1.0, 3.0, np.nan], [2.0, 2.0, 2.0, 5.0]])
    np.testing.assert_array_equal(
        SessionMatrix.average_ranks(m), [[2.5, 1.0, 2.5, np.nan], [2.0, 2.0, 2.0, 4.0]]
    )
