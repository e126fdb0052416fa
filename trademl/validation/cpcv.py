"""Combinatorial Purged Cross-Validation (López de Prado, AFML ch. 7 & 12) over session ordinals.

Samples are (session, symbol) rows: sample i is decided at calendar session ``session[i]`` and
its label becomes known at session ``t1[i] >= session[i]`` (both integer positions on the
exchange calendar, see `session_ordinals`). The rules this module enforces:

* **Groups.** The sorted *unique* sessions are cut into ``n_groups`` contiguous groups with
  ``np.array_split`` (the first ``U mod N`` groups hold one session more), so every symbol of a
  session lands in the same group and a session is never both train and test.
* **Splits.** Split ``j`` tests on the ``j``-th ``itertools.combinations(range(N), k)`` tuple of
  groups; everything else is a training candidate. Adjacent test groups merge into one
  contiguous *test span* ``[span_start, span_end]`` (first and last test decision sessions).
* **Purge.** ``span_label_end = max(t1)`` over the span's test samples. A training candidate
  is purged when its closed label interval ``[session_i, t1_i]`` overlaps the closed interval
  ``[span_start, span_label_end]`` of any test span (sharing one session counts as overlap).
  Purging by each sample's own ``t1`` is what keeps variable horizons (triple barriers) honest;
  a fixed number of rows would not.
* **Embargo.** After each test span, training candidates with
  ``span_label_end < session_i <= span_label_end + embargo`` are dropped. The embargo counts
  from the span's *label end*, not from its last decision session, as AFML does (snippet 7.2
  extends each test label end by the embargo before purging; ``PurgedKFold`` resumes training
  at the index of the test set's max ``t1`` plus the embargo). With a fixed horizon ``h`` and
  one row per session this removes exactly ``h`` rows before each test span and ``h + E`` rows
  after it, which is skfolio's ``CombinatorialPurgedCV(purged_size=h, embargo_size=E)``
  (skfolio puts the row remainder in its *last* fold, where we use ``np.array_split``).

All counts are in calendar sessions (ordinals), not in rows, and everything is deterministic.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["CombinatorialPurgedCV", "SplitInfo", "session_ordinals"]

# Dense lookup tables are used to group sessions when the ordinal range is at most this many
# times the sample count (plus a constant); otherwise np.unique (a sort) is used instead.
_DENSE_RANGE_FACTOR = 4
_DENSE_RANGE_SLACK = 1 << 16


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """Sizes of one CPCV split; ``n_train + n_test + n_purged + n_embargoed`` is the sample count.

    A sample that is both purged (by one span) and in an embargo (of another) counts as purged.
    """

    split: int
    test_groups: tuple[int, ...]
    n_train: int
    n_test: int
    n_purged: int
    n_embargoed: int


@dataclass(frozen=True, slots=True)
class _Layout:
    """Per-call view of the samples: validated ordinals plus their group assignment."""

    session: np.ndarray  # int64 [n]
    t1: np.ndarray  # int64 [n]
    group: np.ndarray  # intp [n], group id of each sample
    group_first: np.ndarray  # int64 [N], first decision session of each group
    group_max_t1: np.ndarray  # int64 [N], max label end over each group's samples


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_ordinals(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer session ordinals, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class CombinatorialPurgedCV:
    """Combinatorial purged cross-validation with session groups, label-end purge and embargo.

    Yields ``C(N, k)`` train/test splits whose test predictions recombine into
    ``C(N-1, k-1)`` full out-of-fold backtest paths (AFML ch. 12). See the module docstring
    for the exact group, purge and embargo rules.

    Parameters
    ----------
    n_groups : int, default 8
        ``N``, the number of contiguous session groups (>= 2).
    n_test_groups : int, default 2
        ``k``, the number of groups tested in each split (``1 <= k < N``).
    embargo : int, default 10
        ``E``, sessions after each test span's label end whose samples are left out of training
        (>= 0).
    """

    def __init__(self, *, n_groups: int = 8, n_test_groups: int = 2, embargo: int = 10) -> None:
        self.n_groups = _check_int("n_groups", n_groups, 2)
        self.n_test_groups = _check_int("n_test_groups", n_test_groups, 1)
        if self.n_test_groups >= self.n_groups:
            raise ValueError(
                f"n_test_groups must be < n_groups, got n_test_groups={n_test_groups}, "
                f"n_groups={n_groups}"
            )
        self.embargo = _check_int("embargo", embargo, 0)

    def __repr__(self) -> str:
        return (
            f"CombinatorialPurgedCV(n_groups={self.n_groups}, "
            f"n_test_groups={self.n_test_groups}, embargo={self.embargo})"
        )

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        """Number of splits, ``C(N, k)``; the arguments are ignored (scikit-learn signature)."""
        return math.comb(self.n_groups, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        """Number of backtest paths, ``k/N · C(N, k) = C(N-1, k-1)``."""
        return math.comb(self.n_groups - 1, self.n_test_groups - 1)

    def test_groups(self) -> list[tuple[int, ...]]:
        """Test group ids of every split, in split order (``itertools.combinations``)."""
        return list(itertools.combinations(range(self.n_groups), self.n_test_groups))

    def paths(self) -> np.ndarray:
        """Which split predicts each group on each backtest path.

        Returns
        -------
        np.ndarray
            int64 ``[n_paths, N]``; ``paths[p, g]`` is the split whose test prediction for group
            ``g`` belongs to path ``p``: the ``p``-th split, in split order, that tests ``g``.
        """
        out = np.empty((self.n_paths, self.n_groups), dtype=np.int64)
        seen = [0] * self.n_groups
        for j, groups in enumerate(self.test_groups()):
            for g in groups:
                out[seen[g], g] = j
                seen[g] += 1
        return out

    def split(self, session: np.ndarray, t1: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` sample indices of every split, in split order.

        Parameters
        ----------
        session : np.ndarray
            Integer calendar ordinal of each sample's decision session; many samples (one per
            symbol) may share a session, in any order.
        t1 : np.ndarray
            Integer calendar ordinal of the session each sample's label becomes known
            (``t1 >= session``).

        Yields
        ------
        tuple[np.ndarray, np.ndarray]
            Sorted int64 indices into the samples: training samples left after purge and
            embargo, and test samples.
        """
        layout = self._layout(session, t1)
        for groups in self.test_groups():
            test, purged, embargoed = self._masks(layout, groups)
            train = ~(test | purged | embargoed)
            yield np.flatnonzero(train).astype(np.int64), np.flatnonzero(test).astype(np.int64)

    def split_info(self, session: np.ndarray, t1: np.ndarray) -> list[SplitInfo]:
        """Per-split sizes (train, test, purged, embargoed) for the samples `split` would see.

        Parameters
        ----------
        session, t1 : np.ndarray
            As for `split`.

        Returns
        -------
        list[SplitInfo]
            One entry per split, in split order.
        """
        layout = self._layout(session, t1)
        out = []
        for j, groups in enumerate(self.test_groups()):
            test, purged, embargoed = self._masks(layout, groups)
            n_test, n_purged, n_emb = (int(m.sum()) for m in (test, purged, embargoed))
            out.append(
                SplitInfo(
                    split=j,
                    test_groups=groups,
                    n_train=layout.session.size - n_test - n_purged - n_emb,
                    n_test=n_test,
                    n_purged=n_purged,
                    n_embargoed=n_emb,
                )
            )
        return out

    def assemble_paths(
        self, session: np.ndarray, t1: np.ndarray, test_predictions: Sequence[np.ndarray]
    ) -> np.ndarray:
        """Recombine per-split test predictions into full out-of-fold backtest paths.

        Parameters
        ----------
        session, t1 : np.ndarray
            As for `split` (the same samples the predictions were made for).
        test_predictions : Sequence[np.ndarray]
            ``test_predictions[j]`` holds split ``j``'s predictions for its test indices, in the
            order `split` yielded them (a leading axis of that length; any trailing axes, e.g.
            class probabilities, are kept).

        Returns
        -------
        np.ndarray
            ``[n_paths, n_samples, ...]``: path ``p`` gives every sample exactly one prediction,
            the one from split ``paths()[p, group of the sample]``.
        """
        layout = self._layout(session, t1)
        combos = self.test_groups()
        if len(test_predictions) != len(combos):
            raise ValueError(
                f"expected {len(combos)} prediction arrays (one per split), "
                f"got {len(test_predictions)}"
            )
        preds = [np.asarray(p) for p in test_predictions]
        trailing = {p.shape[1:] for p in preds}
        if len(trailing) != 1:
            raise ValueError(f"prediction arrays disagree on trailing shape: {sorted(trailing)}")
        out = np.empty(
            (self.n_paths, layout.session.size, *trailing.pop()), dtype=np.result_type(*preds)
        )
        seen = [0] * self.n_groups
        for j, (groups, pred) in enumerate(zip(combos, preds, strict=True)):
            is_test = np.zeros(self.n_groups, dtype=bool)
            is_test[list(groups)] = True
            test_idx = np.flatnonzero(is_test[layout.group])
            if pred.ndim == 0 or pred.shape[0] != test_idx.size:
                raise ValueError(
                    f"split {j} has {test_idx.size} test samples but "
                    f"{pred.shape[0] if pred.ndim else 0} predictions"
                )
            test_group = layout.group[test_idx]
            for g in groups:
                sel = test_group == g
                out[seen[g], test_idx[sel]] = pred[sel]
                seen[g] += 1
        return out

    def _layout(self, session: object, t1: object) -> _Layout:
        """Validate the ordinals and assign each sample's session to a group."""
        s = _as_ordinals("session", session)
        e = _as_ordinals("t1", t1)
        if s.shape != e.shape:
            raise ValueError(f"session and t1 lengths differ: {s.size} vs {e.size}")
        bad = np.flatnonzero(e < s)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"t1 must be >= session; {bad.size} samples violate it, first at index {i} "
                f"(session={s[i]}, t1={e[i]})"
            )
        lo = int(s.min()) if s.size else 0
        span = int(s.max()) - lo + 1 if s.size else 0
        dense = span <= _DENSE_RANGE_FACTOR * s.size + _DENSE_RANGE_SLACK
        if dense:  # O(n) lookup tables over the ordinal range instead of a sort
            present = np.zeros(span, dtype=bool)
            present[s - lo] = True
            uniq = np.flatnonzero(present).astype(np.int64) + lo
        else:
            uniq, inverse = np.unique(s, return_inverse=True)
        if uniq.size < self.n_groups:
            raise ValueError(
                f"need at least n_groups={self.n_groups} distinct sessions, got {uniq.size}"
            )
        chunks = np.array_split(np.arange(uniq.size), self.n_groups)
        group_of_uniq = np.repeat(np.arange(self.n_groups), [c.size for c in chunks])
        if dense:
            lut = np.empty(span, dtype=np.intp)
            lut[uniq - lo] = group_of_uniq
            group = lut[s - lo]
        else:
            group = group_of_uniq[inverse.reshape(-1)]
        group_max_t1 = np.full(self.n_groups, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(group_max_t1, group, e)
        group_first = uniq[[c[0] for c in chunks]]
        return _Layout(s, e, group, group_first, group_max_t1)

    def _masks(
        self, layout: _Layout, groups: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Disjoint boolean masks (test, purged, embargoed) over the samples of one split."""
        is_test = np.zeros(self.n_groups, dtype=bool)
        is_test[list(groups)] = True
        test = is_test[layout.group]
        overlap = np.zeros(layout.session.size, dtype=bool)
        embargo = np.zeros(layout.session.size, dtype=bool)
        for first, last in _runs(groups):
            start = layout.group_first[first]
            label_end = layout.group_max_t1[first : last + 1].max()
            overlap |= (layout.session <= label_end) & (layout.t1 >= start)
            if self.embargo:
                embargo |= (layout.session > label_end) & (
                    layout.session <= label_end + self.embargo
                )
        purged = overlap & ~test
        embargoed = embargo & ~test & ~purged
        return test, purged, embargoed


def _runs(groups: tuple[int, ...]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive ids in sorted `groups`, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for g in groups:
        if runs and runs[-1][1] == g - 1:
            runs[-1] = (runs[-1][0], g)
        else:
            runs.append((g, g))
    return runs


def session_ordinals(
    dates: Sequence[dt.date] | pl.Series, calendar_sessions: Sequence[dt.date]
) -> np.ndarray:
    """Position of each date on the exchange calendar (the ordinals `CombinatorialPurgedCV` uses).

    Parameters
    ----------
    dates : Sequence[datetime.date] | pl.Series
        Dates to map (a ``pl.Date`` series, e.g. a labels frame's ``date`` or ``t1`` column).
    calendar_sessions : Sequence[datetime.date]
        The calendar's sessions, sorted ascending and unique.

    Returns
    -------
    np.ndarray
        int64 ordinals: ``calendar_sessions[out[i]] == dates[i]``.

    Raises
    ------
    ValueError
        If a date is not a session of the calendar (the first such date is named), a date is
        null, or the calendar is not sorted and unique.
    """
    cal = np.asarray(list(calendar_sessions), dtype="datetime64[D]").astype(np.int64)
    if cal.size > 1 and not (np.diff(cal) > 0).all():
        raise ValueError("calendar_sessions must be sorted ascending and unique")
    if isinstance(dates, pl.Series):
        if dates.dtype != pl.Date:
            raise TypeError(f"dates must be a pl.Date series, got {dates.dtype}")
        if dates.null_count():
            raise ValueError(f"dates hold {dates.null_count()} null values")
        days = dates.to_physical().to_numpy().astype(np.int64)
    else:
        days = np.asarray(list(dates), dtype="datetime64[D]")
        if np.isnat(days).any():
            raise ValueError("dates hold a null value")
        days = days.astype(np.int64)
    pos = np.searchsorted(cal, days)
    found = pos < cal.size
    found[found] = cal[pos[found]] == days[found]
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        missing = np.datetime64(int(days[i]), "D").astype(dt.date)
        raise ValueError(
            f"{missing.isoformat()} is not a session of the calendar "
            f"({int((~found).sum())} dates are not sessions)"
        )
    return pos.astype(np.int64)
