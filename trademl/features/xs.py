"""Cross-sectional (per-session) ranks and z-scores of session-major feature columns.

A column holds one value per output row, rows grouped by session in grid-symbol order;
`rows` (session, symbol index) places them on a [session × symbol] matrix. The values are
those of the polars windows `(rank("average") / count()).over("date")` and
`((x - mean()) / std()).over("date")`, bit for bit: polars evaluates both divisions as a
multiplication by the reciprocal of the group statistic, and the means and stds come from
its own per-group kernels. Ranks sort each session with numpy, a block of sessions at a
time, on threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

_BLOCK_CELLS = 65536  # [session × symbol] cells ranked at a time (their temporaries stay in cache)
_SIGN = np.uint64(1 << 63)
_ALL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_TOP = np.float64(np.finfo(np.float64).max).view(np.uint64)


@dataclass(frozen=True)
class SessionRows:
    """Where session-major output rows sit: their session (0..n_sessions) and symbol index.

    `cell` is each row's flat index in the [session × symbol] matrix (increasing), and
    `per_session` counts each session's rows.
    """

    session: np.ndarray
    symbol: np.ndarray
    cell: np.ndarray
    per_session: np.ndarray
    n_sessions: int
    n_symbols: int


def _sorted_keys(m: np.ndarray, nan: np.ndarray, low: np.uint64) -> np.ndarray:
    """Each row's packed keys, sorted (NaN last): the value's bit pattern with the bits under
    `low` replaced by the column index, so a key keeps its value's place among values that
    differ above those bits."""
    cols = np.arange(m.shape[1], dtype=np.uint64)
    flat = m.ravel()
    if max(np.fmax.reduce(flat, initial=0.0), -np.fmin.reduce(flat, initial=0.0)) < 2.0**1023:
        # floats sort fastest; NaN (whose index bits the sort drops) becomes the largest
        # finite key, above every value (none is in the top binade, where ±inf also is)
        keys = m.view(np.uint64) & ~low
        keys[nan] = _TOP & ~low
        keys |= cols
        keys.view(np.float64).sort(axis=1)
        return keys
    keys = (m.view(np.int64) >> 63).view(np.uint64)  # all ones where the sign bit is set
    keys |= _SIGN
    keys ^= m.view(np.uint64)  # unsigned order = float order
    keys[nan] = _ALL
    keys &= ~low
    keys |= cols
    keys.sort(axis=1)
    return keys


def _row_order(m: np.ndarray, nan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `m` (no −0.0), the flat indices that sort it (NaN last), and the sorted
    flat positions p whose value equals the one at p + 1 (ties).

    Packed keys sort in one call; only neighbours whose keys agree above the index bits
    are compared exactly, and the rare rows they show misordered are argsorted instead.
    """
    n_rows, n_cols = m.shape
    low = np.uint64((1 << max(1, (n_cols - 1).bit_length())) - 1)
    keys = _sorted_keys(m, nan, low)
    near = np.flatnonzero((keys[:, 1:] ^ keys[:, :-1]) <= low)
    keys &= low
    order = keys.view(np.int64)
    order += (np.arange(n_rows, dtype=np.int64) * n_cols)[:, None]
    flat_m, flat_o = m.ravel(), order.ravel()
    left = near + near // max(1, n_cols - 1)  # flat sorted position of each pair's left value
    a, b = flat_m.take(flat_o.take(left)), flat_m.take(flat_o.take(left + 1))
    ties = left[a == b]
    bad = np.unique(left[a > b] // n_cols)
    if bad.size:
        fix = np.argsort(m[bad], axis=1, kind="stable") + (bad * n_cols)[:, None]
        order[bad] = fix
        s = flat_m.take(fix)
        r, c = np.nonzero(s[:, 1:] == s[:, :-1])
        keep = ~np.isin(ties // n_cols, bad)
        ties = np.sort(np.concatenate([ties[keep], bad[r] * n_cols + c]))
    return order, ties


def xs_rank_z(
    values: np.ndarray, rows: SessionRows, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per session: the average rank among non-NaN values times 1 / their count, and
    (x − mean) · (1 / std) from the session's `mean` and `std`; NaN where x is NaN.

    Sessions go in blocks of about `_BLOCK_CELLS` matrix cells, whose temporaries stay in
    cache.
    """
    n_cols = rows.n_symbols
    step = max(1, _BLOCK_CELLS // max(n_cols, 1))
    cuts = np.searchsorted(rows.session, np.arange(0, rows.n_sessions + step, step))
    per_session = rows.per_session
    with np.errstate(divide="ignore"):
        inv_std = 1.0 / std
    rank, z = np.empty(values.size), np.empty(values.size)
    for i, r0 in enumerate(range(0, rows.n_sessions, step)):
        a, b = cuts[i], cuts[i + 1]
        r1 = min(r0 + step, rows.n_sessions)
        x = values[a:b]
        rank[a:b] = _rank_block(x, rows.cell[a:b] - r0 * n_cols, r1 - r0, n_cols)
        n = per_session[r0:r1]
        with np.errstate(invalid="ignore"):
            np.subtract(x, np.repeat(mean[r0:r1], n), out=z[a:b])
            z[a:b] *= np.repeat(inv_std[r0:r1], n)
    return rank, z


def _rank_block(values: np.ndarray, cell: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """The `xs_rank_z` ranks of the rows at `cell` of an [n_rows × n_cols] block of sessions."""
    m = np.full(n_rows * n_cols, np.nan)
    m[cell] = values
    m += 0.0  # −0.0 → +0.0: they tie, and so must their keys
    m = m.reshape(n_rows, n_cols)
    nan = np.isnan(m)
    order, ties = _row_order(m, nan)
    count = n_cols - np.count_nonzero(nan, axis=1)
    with np.errstate(divide="ignore"):
        inv = 1.0 / count
    del nan, m
    # 1-based position in the sorted row times 1 / count (NaN past the count), then the
    # average over each tie run
    pos = np.arange(1, n_cols + 1, dtype=np.float64)[None, :]
    ranks = pos * inv[:, None]
    if count.min(initial=n_cols) < n_cols:
        ranks[pos > count[:, None]] = np.nan
    flat_r = ranks.ravel()
    if ties.size:
        in_run = np.zeros(flat_r.size, dtype=bool)
        in_run[ties] = True
        in_run[ties + 1] = True
        at = np.flatnonzero(in_run)
        in_run[:] = False
        in_run[ties + 1] = True  # continues the run before it
        starts = np.flatnonzero(~in_run[at])
        del in_run
        size = np.diff(starts, append=at.size)
        first = at[starts]
        row = first // n_cols
        avg = (2 * (first - row * n_cols) + size + 1) * 0.5 * inv[row]
        flat_r[at] = np.repeat(avg, size)
    out = np.empty(flat_r.size)
    out[order.ravel()] = flat_r
    return out.take(cell)


def session_stats(columns: dict[str, pl.Series], session: np.ndarray) -> pl.DataFrame:
    """Per-session mean and std of each (null-aware) column, one row per session in order."""
    frame = pl.DataFrame({"_s": pl.Series(session, dtype=pl.UInt32).set_sorted(), **columns})
    return frame.group_by("_s", maintain_order=True).agg(
        *[pl.col(n).mean().alias(f"mean_{n}") for n in columns],
        *[pl.col(n).std().alias(f"std_{n}") for n in columns],
    )


class CrossSection:
    """`xs_rank_<name>` and `xs_z_<name>` of some features, from their values (NaN for null)
    and their null-aware columns (for the per-session means and stds).

    One job per feature starts on `pool` at once (numpy releases the GIL), so the work
    overlaps whatever the caller does before `finish`.
    """

    def __init__(
        self,
        names: Sequence[str],
        values: dict[str, np.ndarray],
        columns: dict[str, pl.Series],
        rows: SessionRows,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.names = list(names)
        self.rows = rows
        self._x = {n: values[n] for n in self.names}
        self._stats = session_stats({n: columns[n] for n in self._x}, rows.session)
        self._jobs = {n: pool.submit(self._one, n) for n in self._x}

    def _one(self, name: str) -> tuple[pl.Series, pl.Series]:
        mean = self._stats.get_column(f"mean_{name}").to_numpy()
        std = self._stats.get_column(f"std_{name}").to_numpy()
        rank, z = xs_rank_z(self._x.pop(name), self.rows, mean, std)
        return (
            pl.Series(f"xs_rank_{name}", rank, nan_to_null=True),
            pl.Series(f"xs_z_{name}", z, nan_to_null=True),
        )

    def finish(self) -> dict[str, pl.Series]:
        """The rank and z-score columns, in `names` order."""
        out: dict[str, pl.Series] = {}
        for name in self.names:
            rank, z = self._jobs[name].result()
            out[rank.name], out[z.name] = rank, z
        return out
