"""FeatureStore: the ordered feature list and scaler stats a model was trained with.

Fit on training rows only (honesty rule 5), persist as ``features.json`` next to
the model, and transform serving rows with exactly the same order and stats
(rule 6: train as you serve).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import polars as pl

FORMAT_VERSION = 1
FILENAME = "features.json"


class FeatureOrderError(ValueError):
    """Serving columns do not match the trained feature list."""


class FeatureStore:
    """Scaler + ordered feature list, fit on a training frame.

    Parameters
    ----------
    features:
        Columns to use, in order; default: every float column of the fit frame
        except ``date`` and ``symbol``.
    scaler:
        ``standard`` (mean/std), ``robust`` (median/IQR·0.7413) or ``none``.
    clip:
        After scaling, clip to ±clip (None: no clipping).
    """

    def __init__(
        self,
        *,
        features: Sequence[str] | None = None,
        scaler: Literal["standard", "robust", "none"] = "standard",
        clip: float | None = 5.0,
    ) -> None:
        self.features = list(features) if features is not None else None
        self.scaler = scaler
        self.clip = clip

    def fit(self, frame: pl.DataFrame) -> Self:
        """Learn the feature order and per-feature center/scale from `frame`."""
        names = self.features or [
            c for c, t in frame.schema.items() if c not in ("date", "symbol") and t.is_float()
        ]
        self._require(frame.columns, names)
        return self.fit_array(_matrix(frame, names), names)

    def fit_array(self, x: np.ndarray, names: Sequence[str]) -> Self:
        """`fit` on a raw float matrix whose columns are `names` (NaN = missing).

        The matrix is read one column at a time from a column-major copy (made in row blocks
        unless `x` is Fortran-ordered already), not with one strided pass per column.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise FeatureOrderError(f"matrix of shape {x.shape} does not have {len(names)} columns")
        return self.fit_columns(_column_major(x), names)

    def fit_columns(
        self, columns: Iterable[np.ndarray], names: Sequence[str], *, n_rows: int | None = None
    ) -> Self:
        """`fit` on one 1-D array per feature, in the order of `names` (NaN = missing).

        A column's statistics depend only on its non-missing values in row order, so a
        caller holding the data column-major gets exactly the numbers `fit_array` gives for
        the same rows. Columns may come with their NaNs already dropped (then of different
        lengths); `n_rows` is then the number of fit rows, else all columns share one length.
        """
        centers, scales = np.zeros(len(names)), np.ones(len(names))
        ragged = n_rows is not None
        scratch = np.empty(0)
        j = -1
        with np.errstate(invalid="ignore", divide="ignore"):  # inf values give NaN stats
            for j, column in enumerate(columns):
                if j >= len(names):
                    raise FeatureOrderError(
                        f"more than {len(names)} columns for {len(names)} names"
                    )
                col = np.asarray(column, dtype=np.float64)
                if col.ndim != 1 or (n_rows is not None and col.size > n_rows):
                    raise FeatureOrderError(
                        f"column {names[j]!r} has shape {col.shape} for {n_rows} rows"
                    )
                if not ragged and n_rows is not None and col.size != n_rows:
                    raise FeatureOrderError(
                        f"column {names[j]!r} has {col.size} rows, not {n_rows}"
                    )
                n_rows = n_rows if ragged else col.size
                missing = np.isnan(col)
                if missing.any():
                    col = col[~missing]
                if self.scaler == "none" or col.size == 0:
                    continue
                if self.scaler == "standard":
                    if scratch.size < col.size:
                        scratch = np.empty(col.size)
                    c, s = _mean_std(col, scratch)
                else:
                    q1, med, q3 = np.percentile(col, [25, 50, 75])
                    c, s = float(med), float((q3 - q1) * 0.7413)
                centers[j] = c
                scales[j] = s if s > 0 and math.isfinite(s) else 1.0
        if j + 1 != len(names):
            raise FeatureOrderError(f"got {j + 1} columns for {len(names)} names")
        return self._set_stats(names, centers, scales, int(n_rows or 0))

    def _set_stats(
        self, names: Sequence[str], center: np.ndarray, scale: np.ndarray, n_rows: int
    ) -> Self:
        self.feature_names_ = list(names)
        self.center_ = center
        self.scale_ = scale
        self.n_fit_rows_ = n_rows
        return self

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """Scaled float64 matrix [rows, features] in the trained order; nulls become NaN."""
        names = self._fitted()
        self._require(frame.columns, names)
        return self._scale(_matrix(frame, names))

    def transform_array(
        self, x: np.ndarray, columns: Sequence[str], *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Scale a raw matrix whose `columns` must equal the trained order exactly.

        With `out` (float64, the shape of `x`; may be `x` itself) the result is written
        there instead of a new array: the same numbers, without the temporaries.
        """
        names = self._fitted()
        if list(columns) != names:
            diff = next(
                (i for i, (a, b) in enumerate(zip(columns, names, strict=False)) if a != b),
                min(len(columns), len(names)),
            )
            raise FeatureOrderError(
                f"feature order differs from features.json at position {diff}: "
                f"got {list(columns)[diff : diff + 3]}, expected {names[diff : diff + 3]}"
            )
        return self._scale(np.asarray(x, dtype=np.float64), out=out)

    def _scale(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is not None and (out.shape != x.shape or out.dtype != np.float64):
            raise ValueError(f"out must be float64 of shape {x.shape}, got {out.dtype} {out.shape}")
        z = np.subtract(x, self.center_, out=out)
        np.divide(z, self.scale_, out=z)
        if self.clip is not None:
            np.clip(z, -self.clip, self.clip, out=z)
        return z

    def save(self, directory: str | Path) -> Path:
        """Write ``features.json`` (order, scaler, stats) into `directory`."""
        names = self._fitted()
        path = Path(directory) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": FORMAT_VERSION,
            "features": names,
            "scaler": self.scaler,
            "clip": self.clip,
            "center": [float(v) for v in self.center_],
            "scale": [float(v) for v in self.scale_],
            "n_fit_rows": self.n_fit_rows_,
        }
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> FeatureStore:
        """Read a FeatureStore saved by `save`."""
        path = Path(directory) / FILENAME
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no features.json (was the store saved?)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: format_version {doc.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        n = len(doc["features"])
        if len(doc["center"]) != n or len(doc["scale"]) != n:
            raise ValueError(f"{path}: center/scale lengths differ from the feature list ({n})")
        store = cls(features=doc["features"], scaler=doc["scaler"], clip=doc["clip"])
        store.feature_names_ = list(doc["features"])
        store.center_ = np.asarray(doc["center"], dtype=np.float64)
        store.scale_ = np.asarray(doc["scale"], dtype=np.float64)
        store.n_fit_rows_ = int(doc["n_fit_rows"])
        return store

    def _fitted(self) -> list[str]:
        if not hasattr(self, "feature_names_"):
            raise RuntimeError("FeatureStore is not fitted: call fit() or FeatureStore.load()")
        return self.feature_names_

    @staticmethod
    def _require(columns: Sequence[str], names: Sequence[str]) -> None:
        missing = [n for n in names if n not in columns]
        if missing:
            raise FeatureOrderError(f"frame lacks feature columns {missing}")


def _mean_std(col: np.ndarray, scratch: np.ndarray) -> tuple[float, float]:
    """`col.mean()` and `col.std(ddof=1)` (0.0 for one value), bit for bit, in fewer passes.

    The same operations in numpy's order (pairwise sum / n; squared deviations summed
    pairwise / (n - 1); square root), with the mean computed once and the deviations
    written into `scratch` instead of fresh temporaries.
    """
    n = col.size
    mean = float(np.add.reduce(col) / n)
    if n < 2:
        return mean, 0.0
    dev = np.subtract(col, mean, out=scratch[:n])
    np.multiply(dev, dev, out=dev)
    return mean, math.sqrt(float(np.add.reduce(dev) / (n - 1)))


def _column_major(x: np.ndarray, block_rows: int = 4096) -> np.ndarray:
    """[features, rows] C-ordered copy of a [rows, features] matrix (a view if `x` is F-ordered).

    Copied in blocks of rows that stay in cache, instead of one strided sweep per column.
    """
    if x.flags.f_contiguous:
        return x.T
    out = np.empty((x.shape[1], x.shape[0]), dtype=np.float64)
    for start in range(0, x.shape[0], block_rows):
        out[:, start : start + block_rows] = x[start : start + block_rows].T
    return out


def _matrix(frame: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The named columns as a float64 matrix, nulls and NaN both as NaN."""
    return frame.select([pl.col(n).cast(pl.Float64).fill_null(np.nan) for n in names]).to_numpy()


class FoldMatrix:
    """One raw feature matrix, fit and transformed on many row subsets (CV folds).

    Holds the matrix column-major plus, per column, its non-missing values and the rows of
    its NaNs. When a subset is a union of a few row ranges (CPCV folds over session-sorted
    rows), a column's fit values are a few slices and the scaled row matrix is assembled in
    cache-sized blocks, on `n_threads` threads (columns for the fit, row blocks for the
    transform): exactly the numbers `FeatureStore.fit_array(x[rows])` and `transform_array`
    give, without one pass over the whole matrix per column.

    Parameters
    ----------
    x:
        float [rows, features] matrix whose columns are `names` (NaN = missing).
    names:
        The feature names, in column order.
    n_threads:
        Threads for `fit` and `transform` (numpy releases the GIL in these loops).
    """

    BLOCK_ROWS = 4096
    MIN_RUN = 64  # shorter average ranges use a gather instead of slices

    def __init__(self, x: np.ndarray, names: Sequence[str], *, n_threads: int = 1) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise FeatureOrderError(f"matrix of shape {x.shape} does not have {len(names)} columns")
        self.names = list(names)
        self.n_rows = int(x.shape[0])
        self.n_threads = max(1, int(n_threads))
        self._cols = _column_major(x)
        self._nan_rows = [np.flatnonzero(np.isnan(col)) for col in self._cols]
        self._values = [
            np.delete(col, nan) if nan.size else col
            for col, nan in zip(self._cols, self._nan_rows, strict=True)
        ]

    @classmethod
    def from_frame(
        cls, frame: pl.DataFrame, names: Sequence[str], *, n_threads: int = 1
    ) -> FoldMatrix:
        """The named columns of `frame` (nulls and NaN both missing)."""
        FeatureStore._require(frame.columns, names)
        return cls(_matrix(frame, names), names, n_threads=n_threads)

    def fit(
        self,
        rows: np.ndarray,
        *,
        scaler: Literal["standard", "robust", "none"] = "standard",
        clip: float | None = 5.0,
    ) -> FeatureStore:
        """A `FeatureStore(features=names, scaler=, clip=)` fit on `rows` (sorted, unique)."""
        rows = self._check_rows(rows)
        runs = self._runs(rows)
        k = len(self.names)
        groups = [list(range(i, k, self.n_threads)) for i in range(min(self.n_threads, k))]

        def fit_group(js: list[int]) -> FeatureStore:
            cols = (self._cols[j][rows] for j in js) if runs is None else self._run_cols(runs, js)
            sub = FeatureStore(scaler=scaler, clip=clip)
            return sub.fit_columns(cols, [self.names[j] for j in js], n_rows=rows.size)

        store = FeatureStore(features=self.names, scaler=scaler, clip=clip)
        store.fit_columns([], [], n_rows=rows.size)
        store.feature_names_, store.center_, store.scale_ = (
            list(self.names),
            np.zeros(k),
            np.ones(k),
        )
        for js, part in zip(groups, self._map(fit_group, groups), strict=True):
            store.center_[js], store.scale_[js] = part.center_, part.scale_
        return store

    def transform(
        self, store: FeatureStore, rows: np.ndarray, *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """`store.transform_array(x[rows], names)`, written into `out` ([len(rows), k]) if given."""
        rows = self._check_rows(rows)
        if store._fitted() != self.names:
            raise FeatureOrderError("the store was fit on other features than this matrix holds")
        shape = (rows.size, len(self.names))
        if out is None:
            out = np.empty(shape)
        elif out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-ordered float64 of shape {shape}")
        step, runs = self.BLOCK_ROWS, self._runs(rows)
        if runs is None:  # (output row, source rows) per block
            blocks = [(at, rows[at : at + step]) for at in range(0, rows.size, step)]
        else:
            at, blocks = 0, []
            for start, stop in runs:
                for lo in range(start, stop, step):
                    blocks.append((at, slice(lo, min(stop, lo + step))))
                    at += min(stop, lo + step) - lo

        def fill(part: list[tuple[int, Any]]) -> None:
            for at, src in part:
                raw = self._cols[:, src] if isinstance(src, slice) else self._cols.take(src, 1)
                block = out[at : at + raw.shape[1]]
                np.copyto(block, raw.T)
                store._scale(block, out=block)  # in place, no name check

        cut = -(-len(blocks) // self.n_threads)  # contiguous shares of the blocks
        self._map(fill, [blocks[i : i + cut] for i in range(0, len(blocks), max(cut, 1))])
        return out

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        if self.n_threads == 1 or len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(self.n_threads, len(items))) as pool:
            return list(pool.map(fn, items))

    def _check_rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
        if rows.size and (rows[0] < 0 or rows[-1] >= self.n_rows or (np.diff(rows) <= 0).any()):
            raise ValueError(f"rows must be sorted, unique and within [0, {self.n_rows})")
        return rows.astype(np.intp, copy=False)

    def _runs(self, rows: np.ndarray) -> list[tuple[int, int]] | None:
        """Maximal [start, stop) ranges of consecutive rows, or None when they are too short."""
        if rows.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        if breaks.size + 1 > max(1, rows.size // self.MIN_RUN):
            return None
        starts = rows[np.r_[0, breaks]]
        stops = rows[np.r_[breaks - 1, rows.size - 1]] + 1
        return list(zip(starts.tolist(), stops.tolist(), strict=True))

    def _run_cols(self, runs: list[tuple[int, int]], js: list[int]) -> Iterator[np.ndarray]:
        """Columns `js`' non-missing values over `runs`, in row order (one reused buffer)."""
        bounds = np.array(runs, dtype=np.intp).reshape(-1)
        buffer = np.empty(sum(b - a for a, b in runs))
        for j in js:
            nan_rows = self._nan_rows[j]
            # position of each run bound among the non-missing values
            at = bounds - np.searchsorted(nan_rows, bounds) if nan_rows.size else bounds
            pieces = [self._values[j][a:b] for a, b in zip(at[0::2], at[1::2], strict=True)]
            if len(pieces) == 1:
                yield pieces[0]
            else:  # no runs (no rows) concatenates to an empty column
                yield np.concatenate(
                    [buffer[:0], *pieces], out=buffer[: sum(len(p) for p in pieces)]
                )
