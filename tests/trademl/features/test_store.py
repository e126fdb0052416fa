"""FeatureStore: scaler stats against numpy, persistence, and the train-as-you-serve order."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from trademl.features import FeatureOrderError, FeatureStore
from trademl.features.store import FoldMatrix

N = 401  # (N - 1)/4 is an integer: quartiles need no interpolation convention


@pytest.fixture
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    return pl.DataFrame(
        {
            "date": pl.date_range(pl.date(2020, 1, 1), pl.date(2021, 2, 4), eager=True)[:N],
            "symbol": ["S"] * N,
            "a": rng.normal(3.0, 2.0, N),
            "b": rng.standard_t(3, N) * 10 + 100,
            "c": rng.lognormal(0.0, 1.0, N),
            "n_obs": rng.integers(0, 100, N),  # an integer column: not a feature by default
        }
    )


def numpy_standard(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1))


def numpy_robust(x: np.ndarray) -> tuple[float, float]:
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float(np.median(x)), float((q3 - q1) * 0.7413)


@pytest.mark.parametrize(
    ("scaler", "ref"), [("standard", numpy_standard), ("robust", numpy_robust)]
)
def test_fit_and_transform_match_numpy(frame: pl.DataFrame, scaler: str, ref) -> None:
    store = FeatureStore(scaler=scaler, clip=None).fit(frame)
    assert store.feature_names_ == ["a", "b", "c"]
    assert store.n_fit_rows_ == N
    x = frame.select("a", "b", "c").to_numpy()
    stats = [ref(x[:, j]) for j in range(3)]
    np.testing.assert_allclose(store.center_, [s[0] for s in stats], rtol=1e-12)
    np.testing.assert_allclose(store.scale_, [s[1] for s in stats], rtol=1e-12)
    expected = (x - [s[0] for s in stats]) / [s[1] for s in stats]
    np.testing.assert_allclose(store.transform(frame), expected, rtol=1e-12)


def test_standard_scaling_gives_zero_mean_unit_std_on_the_fit_rows(frame: pl.DataFrame) -> None:
    z = FeatureStore(clip=None).fit(frame).transform(frame)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1.0, rtol=1e-12)


def test_robust_scaling_of_a_hand_worked_column() -> None:
    # median 3, quartiles 2 and 4 (positions 1 and 3 of 5 sorted values): scale 2·0.7413.
    df = pl.DataFrame({"x": [5.0, 1.0, 3.0, 4.0, 2.0]})
    store = FeatureStore(scaler="robust", clip=None).fit(df)
    assert store.center_.tolist() == [3.0]
    assert store.scale_[0] == pytest.approx(2 * 0.7413, rel=1e-15)
    np.testing.assert_allclose(
        store.transform(df)[:, 0], np.array([2, -2, 0, 1, -1]) / (2 * 0.7413)
    )


def test_scaler_none_and_degenerate_columns_leave_values_unscaled() -> None:
    df = pl.DataFrame({"k": [7.0] * 5, "e": [None] * 5, "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    df = df.with_columns(pl.col("e").cast(pl.Float64))
    store = FeatureStore(clip=None).fit(df)
    # A constant column gets scale 1 (not a division by 0); an all-null one center 0, scale 1.
    assert store.center_.tolist() == [7.0, 0.0, 3.0]
    assert store.scale_[:2].tolist() == [1.0, 1.0]
    raw = FeatureStore(scaler="none", clip=None).fit(df)
    assert raw.center_.tolist() == [0.0, 0.0, 0.0] and raw.scale_.tolist() == [1.0, 1.0, 1.0]


def test_fit_ignores_nulls_and_nans(frame: pl.DataFrame) -> None:
    holes = frame.with_columns(
        pl.when(pl.int_range(N) % 7 == 0).then(None).otherwise(pl.col("a")).alias("a"),
        pl.when(pl.int_range(N) % 5 == 0).then(float("nan")).otherwise(pl.col("b")).alias("b"),
    )
    store = FeatureStore(clip=None).fit(holes)
    a = frame["a"].to_numpy()[np.arange(N) % 7 != 0]
    b = frame["b"].to_numpy()[np.arange(N) % 5 != 0]
    np.testing.assert_allclose(store.center_[:2], [a.mean(), b.mean()], rtol=1e-12)
    np.testing.assert_allclose(store.scale_[:2], [a.std(ddof=1), b.std(ddof=1)], rtol=1e-12)


def test_nulls_become_nan_and_clip_bounds_the_rest() -> None:
    train = pl.DataFrame({"x": [-1.0, 0.0, 1.0], "y": [10.0, 20.0, 30.0]})  # std 1 and 10
    store = FeatureStore(clip=3.0).fit(train)
    serve = pl.DataFrame({"x": [None, 100.0, -100.0, 2.5], "y": [20.0, None, 15.0, 50.0]})
    z = store.transform(serve)
    assert np.isnan(z[0, 0]) and np.isnan(z[1, 1])
    np.testing.assert_array_equal(z[1:, 0], [3.0, -3.0, 2.5])
    np.testing.assert_allclose(z[[0, 2, 3], 1], [0.0, -0.5, 3.0])
    unclipped = FeatureStore(clip=None).fit(train).transform(serve)
    assert unclipped[1, 0] == 100.0 and unclipped[3, 1] == pytest.approx(3.0)


def test_save_writes_order_and_stats_and_load_transforms_identically(
    frame: pl.DataFrame, tmp_path
) -> None:
    store = FeatureStore(features=["c", "a"], scaler="robust", clip=4.0).fit(frame)
    path = store.save(tmp_path / "model")
    assert path == tmp_path / "model" / "features.json"
    doc = json.loads(path.read_text())
    assert doc["features"] == ["c", "a"]
    assert doc["scaler"] == "robust" and doc["clip"] == 4.0 and doc["n_fit_rows"] == N
    c, a = frame["c"].to_numpy(), frame["a"].to_numpy()
    np.testing.assert_allclose(doc["center"], [np.median(c), np.median(a)], rtol=1e-12)
    np.testing.assert_allclose(doc["scale"], [numpy_robust(c)[1], numpy_robust(a)[1]], rtol=1e-12)
    loaded = FeatureStore.load(tmp_path / "model")
    assert loaded.feature_names_ == ["c", "a"]
    np.testing.assert_array_equal(loaded.transform(frame), store.transform(frame))
    assert loaded.transform(frame).shape == (N, 2)


def test_load_rejects_missing_corrupt_or_foreign_files(frame: pl.DataFrame, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"features\.json"):
        FeatureStore.load(tmp_path)
    path = FeatureStore().fit(frame).save(tmp_path)
    doc = json.loads(path.read_text())
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        FeatureStore.load(tmp_path)
    path.write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version"):
        FeatureStore.load(tmp_path)
    path.write_text(json.dumps({**doc, "scale": doc["scale"][:-1]}))
    with pytest.raises(ValueError, match="lengths"):
        FeatureStore.load(tmp_path)


def test_transform_reorders_columns_by_name(frame: pl.DataFrame) -> None:
    store = FeatureStore().fit(frame)
    shuffled = frame.select("symbol", "c", "n_obs", "a", "date", "b")
    np.testing.assert_array_equal(store.transform(shuffled), store.transform(frame))


def test_transform_missing_column_raises(frame: pl.DataFrame) -> None:
    store = FeatureStore().fit(frame)
    with pytest.raises(FeatureOrderError, match=r"\['b'\]"):
        store.transform(frame.drop("b"))


def test_transform_array_checks_the_order_and_names_the_position(frame: pl.DataFrame) -> None:
    store = FeatureStore().fit(frame)
    x = frame.select("a", "b", "c").to_numpy()
    np.testing.assert_array_equal(store.transform_array(x, ["a", "b", "c"]), store.transform(frame))
    with pytest.raises(FeatureOrderError, match="position 1"):
        store.transform_array(x[:, [0, 2, 1]], ["a", "c", "b"])
    with pytest.raises(FeatureOrderError, match="position 2"):
        store.transform_array(x[:, :2], ["a", "b"])


def test_unfitted_store_raises(tmp_path) -> None:
    store = FeatureStore()
    df = pl.DataFrame({"a": [1.0]})
    for call in (
        lambda: store.transform(df),
        lambda: store.transform_array(np.ones((1, 1)), ["a"]),
        lambda: store.save(tmp_path),
    ):
        with pytest.raises(RuntimeError, match="not fitted"):
            call()


def test_fit_with_an_explicit_feature_list_missing_a_column_raises(frame: pl.DataFrame) -> None:
    with pytest.raises(FeatureOrderError, match="zz"):
        FeatureStore(features=["a", "zz"]).fit(frame)


# --- the fast paths: fit_array/fit_columns/FoldMatrix give the plain computation bit for bit


def plain_stats(x: np.ndarray, scaler: str) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward per-column computation: drop NaN, numpy mean/std or percentiles."""
    centers, scales = np.zeros(x.shape[1]), np.ones(x.shape[1])
    for j in range(x.shape[1]):
        col = x[~np.isnan(x[:, j]), j]
        if col.size == 0:
            continue
        if scaler == "standard":
            c, s = float(np.mean(col)), float(np.std(col, ddof=1)) if col.size > 1 else 0.0
        else:
            q1, c, q3 = np.percentile(col, [25, 50, 75])
            s = (q3 - q1) * 0.7413
        centers[j], scales[j] = c, (s if s > 0 else 1.0)
    return centers, scales


def ragged_matrix(n: int, seed: int) -> np.ndarray:
    """Columns of very different scales; NaN runs, scattered NaN, an all-NaN and a constant."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)) * [1e-3, 1.0, 50.0, 1e4, 1.0, 1.0] + [0.0, 3.0, -7.0, 1e5, 0, 0]
    x[: n // 5, 0] = np.nan  # a warm-up run, as long-window features have
    x[rng.random(n) < 0.1, 1] = np.nan
    x[:, 4] = np.nan
    x[:, 5] = 2.5
    return x


# lengths around numpy's pairwise-summation blocks (8 and 128) and one long column
@pytest.mark.parametrize("n", [1, 2, 9, 127, 129, 1000, 20_011])
@pytest.mark.parametrize("scaler", ["standard", "robust"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_fit_array_equals_the_plain_computation_exactly(n: int, scaler: str, order: str) -> None:
    x = np.asarray(ragged_matrix(n, seed=n), order=order)
    names = [f"f{j}" for j in range(6)]
    store = FeatureStore(features=names, scaler=scaler).fit_array(x, names)
    centers, scales = plain_stats(x, scaler)
    np.testing.assert_array_equal(store.center_, centers)
    np.testing.assert_array_equal(store.scale_, scales)
    assert store.n_fit_rows_ == n


def test_fit_columns_accepts_columns_with_nans_dropped_and_checks_the_count() -> None:
    x = ragged_matrix(500, seed=1)
    names = [f"f{j}" for j in range(6)]
    dropped = [x[~np.isnan(x[:, j]), j] for j in range(6)]
    store = FeatureStore(features=names).fit_columns(dropped, names, n_rows=500)
    np.testing.assert_array_equal(store.center_, plain_stats(x, "standard")[0])
    assert store.n_fit_rows_ == 500
    with pytest.raises(FeatureOrderError, match="6 names"):
        FeatureStore().fit_columns(list(x.T[:5]), names)
    with pytest.raises(FeatureOrderError, match="6 names"):
        FeatureStore().fit_columns([*x.T, x[:, 0]], names)
    with pytest.raises(FeatureOrderError, match="'f1' has 499 rows"):
        FeatureStore().fit_columns([x[:, 0], x[1:, 1], *x.T[2:]], names)


def test_transform_array_into_out_gives_the_same_numbers() -> None:
    x = ragged_matrix(300, seed=2)
    names = [f"f{j}" for j in range(6)]
    store = FeatureStore(features=names, clip=2.0).fit_array(x, names)
    expected = np.clip((x - store.center_) / store.scale_, -2.0, 2.0)
    out = np.empty_like(x)
    assert store.transform_array(x, names, out=out) is out
    np.testing.assert_array_equal(out, expected)
    inplace = x.copy()
    store.transform_array(inplace, names, out=inplace)
    np.testing.assert_array_equal(inplace, expected)
    with pytest.raises(ValueError, match="out must be float64"):
        store.transform_array(x, names, out=np.empty((299, 6)))


def fold_rows(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "ranges":  # what CPCV yields on session-sorted rows: a few long ranges
        keep = np.ones(n, dtype=bool)
        keep[n // 4 : n // 4 + n // 8] = False
        keep[n // 2 + 17 : n // 2 + 400] = False
        keep[-5:] = False
        return np.flatnonzero(keep)
    if kind == "scattered":  # unsorted data: short runs, the gather path
        return np.flatnonzero(rng.random(n) < 0.6)
    if kind == "single":
        return np.array([n // 3])
    return np.arange(n)


@pytest.mark.parametrize("kind", ["ranges", "scattered", "single", "all"])
@pytest.mark.parametrize("scaler", ["standard", "robust"])
@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_fold_matrix_fits_and_transforms_like_the_store_on_the_rows(
    kind: str, scaler: str, n_threads: int
) -> None:
    x = ragged_matrix(9_000, seed=4)
    names = [f"f{j}" for j in range(6)]
    data = FoldMatrix(x, names, n_threads=n_threads)
    rows = fold_rows(x.shape[0], kind, np.random.default_rng(5))
    store = data.fit(rows, scaler=scaler, clip=3.0)
    centers, scales = plain_stats(x[rows], scaler)
    np.testing.assert_array_equal(store.center_, centers)
    np.testing.assert_array_equal(store.scale_, scales)
    assert store.n_fit_rows_ == rows.size and store.clip == 3.0
    expected = np.clip((x[rows] - centers) / scales, -3.0, 3.0)
    np.testing.assert_array_equal(data.transform(store, rows), expected)
    out = np.full((rows.size, 6), 7.0)
    assert data.transform(store, rows, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_fold_matrix_on_no_rows_gives_the_unfit_defaults() -> None:
    names = [f"f{j}" for j in range(6)]
    data = FoldMatrix(ragged_matrix(50, seed=7), names, n_threads=2)
    store = data.fit(np.array([], dtype=np.int64))
    assert store.n_fit_rows_ == 0
    assert store.center_.tolist() == [0.0] * 6 and store.scale_.tolist() == [1.0] * 6
    assert data.transform(store, np.array([], dtype=np.int64)).shape == (0, 6)


def test_fold_matrix_validates_rows_and_the_store() -> None:
    x = ragged_matrix(100, seed=6)
    names = [f"f{j}" for j in range(6)]
    data = FoldMatrix(x, names)
    for bad in (np.array([3, 2]), np.array([1, 1]), np.array([-1, 4]), np.array([5, 100])):
        with pytest.raises(ValueError, match="sorted, unique and within"):
            data.fit(bad)
    with pytest.raises(ValueError, match="integer"):
        data.fit(np.array([0.0, 1.0]))
    other = FeatureStore(features=["a"]).fit_array(x[:, :1], ["a"])
    with pytest.raises(FeatureOrderError, match="other features"):
        data.transform(other, np.arange(10))
    with pytest.raises(ValueError, match="C-ordered float64"):
        data.transform(data.fit(np.arange(10)), np.arange(10), out=np.empty((10, 6), order="F"))
    with pytest.raises(FeatureOrderError, match="6 columns"):
        FoldMatrix(x[:, :5], names)
