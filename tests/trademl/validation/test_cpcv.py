"""Combinatorial purged CV: counts, no leakage vs a brute-force reference, purge/embargo edges,
path assembly, input checks, session ordinals, speed, and agreement with skfolio."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import polars as pl
import pytest

from trademl.validation.cpcv import CombinatorialPurgedCV, SplitInfo, session_ordinals


def make_panel(
    seed: int,
    *,
    n_sessions: int = 40,
    n_symbols: int = 5,
    max_horizon: int = 6,
    sparse: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (session, t1) samples: calendar gaps, missing symbols, variable horizons.

    `sparse` spreads the sessions over a huge ordinal range (exercises the np.unique path).
    """
    rng = np.random.default_rng(seed)
    if sparse:
        cal = np.sort(rng.choice(10**9, size=n_sessions, replace=False)).astype(np.int64)
    else:  # ordinals with gaps: sessions the data does not hold
        cal = np.cumsum(rng.integers(1, 3, size=n_sessions)).astype(np.int64) + 100
    session = np.repeat(cal, n_symbols)
    keep = rng.random(session.size) < 0.8
    keep[::n_symbols] = True  # every session holds at least one sample
    session = session[keep]
    t1 = session + rng.integers(0, max_horizon + 1, size=session.size)
    order = rng.permutation(session.size)
    return session[order], t1[order]


def reference_groups(session: np.ndarray, n_groups: int) -> np.ndarray:
    """Group id of each sample: unique sessions cut into runs of size q+1 (first r) then q."""
    uniq = sorted(set(session.tolist()))
    q, r = divmod(len(uniq), n_groups)
    sizes = [q + 1] * r + [q] * (n_groups - r)
    group_of: dict[int, int] = {}
    pos = 0
    for g, size in enumerate(sizes):
        for s in uniq[pos : pos + size]:
            group_of[s] = g
        pos += size
    return np.array([group_of[s] for s in session.tolist()])


def reference_split(
    session: np.ndarray, t1: np.ndarray, n_groups: int, k: int, embargo: int
) -> list[tuple[list[int], list[int]]]:
    """Brute force over samples, written from the spec independently of the module."""
    group = reference_groups(session, n_groups).tolist()
    s, e = session.tolist(), t1.tolist()
    out = []
    for combo in itertools.combinations(range(n_groups), k):
        test = [i for i in range(len(s)) if group[i] in combo]
        runs: list[list[int]] = []
        for g in combo:
            if runs and runs[-1][-1] == g - 1:
                runs[-1].append(g)
            else:
                runs.append([g])
        spans = []
        for run in runs:
            members = [i for i in test if group[i] in run]
            spans.append((min(s[i] for i in members), max(e[i] for i in members)))
        train = []
        for i in range(len(s)):
            if group[i] in combo:
                continue
            if any(s[i] <= end and e[i] >= start for start, end in spans):
                continue  # purged: [session, t1] overlaps [span start, span label end]
            if any(end < s[i] <= end + embargo for _, end in spans):
                continue  # embargoed
            train.append(i)
        out.append((train, test))
    return out


CASES = [(8, 2, 3), (6, 2, 0), (5, 1, 2), (4, 3, 1), (2, 1, 0), (6, 3, 5), (7, 2, 10)]


@pytest.mark.parametrize(
    ("n", "k", "n_splits", "n_paths"),
    [(8, 2, 28, 7), (6, 2, 15, 5), (5, 1, 5, 1), (10, 3, 120, 36), (2, 1, 2, 1), (4, 3, 4, 3)],
)
def test_counts(n: int, k: int, n_splits: int, n_paths: int) -> None:
    cv = CombinatorialPurgedCV(n_groups=n, n_test_groups=k, embargo=1)
    assert cv.get_n_splits() == n_splits == math.comb(n, k)
    assert cv.n_paths == n_paths == k * math.comb(n, k) // n
    session, t1 = make_panel(0, n_sessions=3 * n)
    splits = list(cv.split(session, t1))
    assert len(splits) == n_splits
    assert len(cv.split_info(session, t1)) == n_splits
    assert cv.paths().shape == (n_paths, n)
    group = reference_groups(session, n)
    times_tested = np.zeros(n, dtype=int)
    for _, test in splits:
        tested = np.unique(group[test])
        assert tested.size == k
        times_tested[tested] += 1
    assert (times_tested == n_paths).all()


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "k", "embargo"), CASES)
def test_matches_brute_force(n: int, k: int, embargo: int, seed: int, sparse: bool) -> None:
    session, t1 = make_panel(seed, sparse=sparse)
    cv = CombinatorialPurgedCV(n_groups=n, n_test_groups=k, embargo=embargo)
    got = list(cv.split(session, t1))
    want = reference_split(session, t1, n, k, embargo)
    assert len(got) == len(want)
    for (train, test), (ref_train, ref_test) in zip(got, want, strict=True):
        assert train.dtype == np.int64 and test.dtype == np.int64
        assert train.tolist() == ref_train
        assert test.tolist() == ref_test
    for info, (train, test) in zip(cv.split_info(session, t1), got, strict=True):
        assert (info.n_train, info.n_test) == (train.size, test.size)
        assert info.n_train + info.n_test + info.n_purged + info.n_embargoed == session.size


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize(("n", "k", "embargo"), CASES)
def test_no_leakage(n: int, k: int, embargo: int, seed: int) -> None:
    """Sample-level honesty, checked directly rather than against the reference."""
    session, t1 = make_panel(seed, max_horizon=9)
    cv = CombinatorialPurgedCV(n_groups=n, n_test_groups=k, embargo=embargo)
    for train, test in cv.split(session, t1):
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
        # a session is wholly test or wholly not test: all its symbols share the fold
        is_test = np.zeros(session.size, dtype=bool)
        is_test[test] = True
        assert set(session[is_test].tolist()).isdisjoint(session[~is_test].tolist())
        s_tr, e_tr = session[train][:, None], t1[train][:, None]
        s_te, e_te = session[test][None, :], t1[test][None, :]
        # no training label interval overlaps any test label interval
        assert not ((s_tr <= e_te) & (e_tr >= s_te)).any()
        # no training decision within E sessions after any test label end
        assert not ((s_tr > e_te) & (s_tr <= e_te + embargo)).any()


def one_row_per_session(n_sessions: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    session = np.arange(n_sessions, dtype=np.int64)
    return session, session + horizon


def test_purge_is_necessary() -> None:
    """Before a test span: t1 inside it → purged, t1 just before it → kept; after it likewise."""
    session, t1 = one_row_per_session(40, 0)  # groups of 10 sessions, N=4
    t1[8] = 10  # label ends on the test span's first session
    t1[7] = 9  # label ends the session before it
    t1[15] = 21  # a test label reaching past the span: the span's label end is 21
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=1, embargo=0)
    train, test = list(cv.split(session, t1))[1]  # tests group 1 = sessions 10..19
    assert test.tolist() == list(range(10, 20))
    assert 8 not in train and 7 in train and 9 in train
    assert 20 not in train and 21 not in train and 22 in train  # decided ≤ label end 21
    info = cv.split_info(session, t1)[1]
    assert (info.n_purged, info.n_embargoed) == (3, 0)


def test_embargo_counts_from_span_label_end() -> None:
    session, t1 = one_row_per_session(40, 2)
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=1, embargo=3)
    train, _ = list(cv.split(session, t1))[1]  # test sessions 10..19, label end 21
    dropped = sorted(set(range(40)) - set(train.tolist()) - set(range(10, 20)))
    assert dropped == [8, 9, 20, 21, 22, 23, 24]  # purge 8,9 / 20,21; embargo 22..24
    info = cv.split_info(session, t1)[1]
    assert (info.n_train, info.n_test, info.n_purged, info.n_embargoed) == (23, 10, 4, 3)


def test_adjacent_test_groups_merge_and_gaps_purge_both_sides() -> None:
    session, t1 = one_row_per_session(40, 2)
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=2, embargo=3)
    info = {i.test_groups: i for i in cv.split_info(session, t1)}
    # (1, 2): one span 10..29 → purge 8,9,30,31; embargo 32..34
    assert (info[(1, 2)].n_purged, info[(1, 2)].n_embargoed) == (4, 3)
    # (0, 2): spans 0..9 and 20..29 → purge 10,11,18,19,30,31; embargo 12..14, 32..34
    assert (info[(0, 2)].n_purged, info[(0, 2)].n_embargoed) == (6, 6)
    assert info[(0, 2)] == SplitInfo(1, (0, 2), 20 - 12, 20, 6, 6)


def test_groups_split_unique_sessions_not_samples() -> None:
    """10 sessions → groups of 3, 3, 2, 2 sessions however many symbols each session holds."""
    session = np.repeat(np.arange(10), [1, 9, 1, 1, 7, 1, 1, 1, 1, 8])
    t1 = session.copy()
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=1, embargo=0)
    tested = [sorted(set(session[test].tolist())) for _, test in cv.split(session, t1)]
    assert tested == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]


def test_reproducible() -> None:
    session, t1 = make_panel(7, max_horizon=8)
    a = list(CombinatorialPurgedCV(embargo=2).split(session, t1))
    b = list(CombinatorialPurgedCV(embargo=2).split(session, t1))
    cv = CombinatorialPurgedCV(embargo=2)
    c = list(cv.split(session, t1))
    d = list(cv.split(session, t1))
    for run in (b, c, d):
        for (tr_a, te_a), (tr, te) in zip(a, run, strict=True):
            assert np.array_equal(tr_a, tr) and np.array_equal(te_a, te)
    assert cv.split_info(session, t1) == cv.split_info(session, t1)


def test_paths_layout() -> None:
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2)
    paths = cv.paths()
    combos = cv.test_groups()
    for g in range(6):
        assert paths[:, g].tolist() == [j for j, c in enumerate(combos) if g in c]
    # each split fills exactly one cell per test group
    assert sorted(paths.ravel().tolist()) == sorted(j for j, c in enumerate(combos) for _ in c)


@pytest.mark.parametrize(("n", "k"), [(8, 2), (6, 3), (5, 1), (4, 3)])
def test_assemble_paths(n: int, k: int) -> None:
    session, t1 = make_panel(11, n_sessions=30)
    cv = CombinatorialPurgedCV(n_groups=n, n_test_groups=k, embargo=2)
    splits = list(cv.split(session, t1))
    group = reference_groups(session, n)
    paths = cv.paths()
    # prediction encodes (split, sample): each sample must get the split paths() names
    preds = [j * 10_000.0 + test for j, (_, test) in enumerate(splits)]
    out = cv.assemble_paths(session, t1, preds)
    assert out.shape == (cv.n_paths, session.size)
    assert np.array_equal(out, paths[:, group] * 10_000.0 + np.arange(session.size))
    # predictions = split id → the path matrix is paths() broadcast over samples
    ids = [np.full(test.size, j) for j, (_, test) in enumerate(splits)]
    assert np.array_equal(cv.assemble_paths(session, t1, ids), paths[:, group])
    # trailing axes (class probabilities) are carried through
    proba = [np.stack([p, -p], axis=1) for p in preds]
    out3 = cv.assemble_paths(session, t1, proba)
    assert out3.shape == (cv.n_paths, session.size, 2)
    assert np.array_equal(out3[..., 1], -out)


def test_assemble_paths_rejects_mismatched_predictions() -> None:
    session, t1 = make_panel(12)
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=2, embargo=0)
    preds = [np.zeros(test.size) for _, test in cv.split(session, t1)]
    with pytest.raises(ValueError, match="one per split"):
        cv.assemble_paths(session, t1, preds[:-1])
    with pytest.raises(ValueError, match="split 2 has"):
        cv.assemble_paths(session, t1, [*preds[:2], preds[2][:-1], *preds[3:]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_groups": 1}, "n_groups must be >= 2"),
        ({"n_test_groups": 0}, "n_test_groups must be >= 1"),
        ({"n_groups": 4, "n_test_groups": 4}, "n_test_groups must be < n_groups"),
        ({"embargo": -1}, "embargo must be >= 0"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CombinatorialPurgedCV(**kwargs)


@pytest.mark.parametrize("kwargs", [{"n_groups": 4.0}, {"embargo": True}, {"n_test_groups": "2"}])
def test_rejects_non_int_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        CombinatorialPurgedCV(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("session", "t1", "error", "match"),
    [
        (np.arange(10), np.arange(9), ValueError, "lengths differ"),
        (np.arange(10), np.arange(10) - (np.arange(10) == 4), ValueError, "first at index 4"),
        (np.repeat(np.arange(3), 5), np.repeat(np.arange(3), 5), ValueError, "distinct sessions"),
        (np.arange(10.0), np.arange(10.0), TypeError, "integer session ordinals"),
        (np.arange(10).reshape(5, 2), np.arange(10).reshape(5, 2), ValueError, "dimensional"),
        (np.array([], dtype=np.int64), np.array([], dtype=np.int64), ValueError, "distinct"),
    ],
)
def test_rejects_bad_samples(
    session: np.ndarray, t1: np.ndarray, error: type[Exception], match: str
) -> None:
    cv = CombinatorialPurgedCV(n_groups=4, n_test_groups=2, embargo=1)
    with pytest.raises(error, match=match):
        next(cv.split(session, t1))
    with pytest.raises(error, match=match):
        cv.split_info(session, t1)


CALENDAR = [dt.date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 10, 11, 12, 16)]


def test_session_ordinals() -> None:
    dates = [dt.date(2024, 1, 16), dt.date(2024, 1, 2), dt.date(2024, 1, 8)]
    assert session_ordinals(dates, CALENDAR).tolist() == [9, 0, 4]
    series = pl.Series("t1", dates, dtype=pl.Date)
    out = session_ordinals(series, CALENDAR)
    assert out.dtype == np.int64 and out.tolist() == [9, 0, 4]
    assert session_ordinals([], CALENDAR).size == 0


@pytest.mark.parametrize(
    "dates",
    [
        [dt.date(2024, 1, 2), dt.date(2024, 1, 15)],  # a holiday inside the calendar
        [dt.date(2024, 1, 15), dt.date(2024, 1, 3)],
        pl.Series([dt.date(2024, 1, 3), dt.date(2024, 1, 15)], dtype=pl.Date),
    ],
)
def test_session_ordinals_names_non_session(dates: object) -> None:
    with pytest.raises(ValueError, match="2024-01-15 is not a session"):
        session_ordinals(dates, CALENDAR)  # type: ignore[arg-type]


def test_session_ordinals_rejects_dates_past_the_calendar_and_bad_inputs() -> None:
    with pytest.raises(ValueError, match="2024-01-17 is not a session"):
        session_ordinals([dt.date(2024, 1, 17)], CALENDAR)
    with pytest.raises(ValueError, match="2023-12-29 is not a session"):
        session_ordinals([dt.date(2023, 12, 29)], CALENDAR)
    with pytest.raises(ValueError, match="sorted"):
        session_ordinals([dt.date(2024, 1, 2)], CALENDAR[::-1])
    with pytest.raises(ValueError, match="null"):
        session_ordinals(pl.Series([dt.date(2024, 1, 2), None], dtype=pl.Date), CALENDAR)
    with pytest.raises(TypeError, match=r"pl\.Date"):
        session_ordinals(pl.Series(["2024-01-02"]), CALENDAR)


def test_full_panel_split_sizes() -> None:
    """500 symbols × 2500 sessions (1.25M samples), symbol-major: groups are by session."""
    session = np.tile(np.arange(2500, dtype=np.int64), 500)  # unsorted by session
    t1 = session + np.random.default_rng(0).integers(1, 15, size=session.size)
    cv = CombinatorialPurgedCV(n_groups=8, n_test_groups=2, embargo=10)
    it = cv.split(session, t1)
    sizes = [next(it)[1].size for _ in range(4)]
    assert sizes[0] == 2 * 313 * 500


# --- skfolio ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "h", "embargo"),
    [(5, 2, 2, 1), (6, 3, 3, 0), (8, 2, 1, 4), (4, 2, 0, 0), (10, 4, 5, 2), (7, 3, 4, 3)],
)
def test_matches_skfolio_with_fixed_horizon(n: int, k: int, h: int, embargo: int) -> None:
    """One row per session, t1 = session + h, rows divisible by N: same train and test sets.

    skfolio's purged_size=h drops h rows before each test fold and h + embargo_size rows after
    it. Ours drops training rows whose [session, t1] overlaps [span start, max test t1] (h rows
    before, h rows after) and then `embargo` sessions after that label end, so the definitions
    coincide. Intended differences, not exercised here: skfolio gives the row remainder to its
    last fold (we use np.array_split over unique sessions), counts rows where we count calendar
    sessions, and purges a fixed h where we purge by each sample's own t1
    (see test_variable_horizon_is_purged_by_t1_unlike_skfolio).
    """
    skfolio_ms = pytest.importorskip("skfolio.model_selection")
    session, t1 = one_row_per_session(20 * n, h)
    session, t1 = session + 1000, t1 + 1000  # ordinals need not start at 0
    ours = list(
        CombinatorialPurgedCV(n_groups=n, n_test_groups=k, embargo=embargo).split(session, t1)
    )
    theirs = list(
        skfolio_ms.CombinatorialPurgedCV(
            n_folds=n, n_test_folds=k, purged_size=h, embargo_size=embargo
        ).split(np.zeros((session.size, 1)))
    )
    assert len(ours) == len(theirs)
    for (train, test), (sk_train, sk_tests) in zip(ours, theirs, strict=True):
        assert train.tolist() == sk_train.tolist()
        assert test.tolist() == np.sort(np.concatenate(sk_tests)).tolist()


def test_paths_match_skfolio_recombined_paths() -> None:
    skfolio_ms = pytest.importorskip("skfolio.model_selection")
    for n, k in [(8, 2), (6, 3), (5, 4)]:
        ours = CombinatorialPurgedCV(n_groups=n, n_test_groups=k).paths()
        theirs = skfolio_ms.CombinatorialPurgedCV(n_folds=n, n_test_folds=k).recombined_paths
        assert np.array_equal(ours, theirs.T)


def test_variable_horizon_is_purged_by_t1_unlike_skfolio() -> None:
    """A long label reaching into the test span is purged by us; skfolio's fixed h keeps it."""
    skfolio_ms = pytest.importorskip("skfolio.model_selection")
    session, t1 = one_row_per_session(50, 2)
    t1[5] = 21  # decided 15 sessions before the test span (20..29), label ends inside it
    ours = list(CombinatorialPurgedCV(n_groups=5, n_test_groups=2, embargo=1).split(session, t1))
    theirs = list(
        skfolio_ms.CombinatorialPurgedCV(
            n_folds=5, n_test_folds=2, purged_size=2, embargo_size=1
        ).split(np.zeros((50, 1)))
    )
    split = CombinatorialPurgedCV(n_groups=5, n_test_groups=2).test_groups().index((2, 3))
    train, sk_train = ours[split][0], theirs[split][0]
    assert 5 in sk_train and 5 not in train
    assert sorted(set(sk_train.tolist()) - set(train.tolist())) == [5]
