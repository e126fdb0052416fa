"""Provenance stamps: data fingerprints and the git SHA."""

from __future__ import annotations

import re

import polars as pl
import pytest

from trademl import provenance
from trademl.provenance import data_fingerprint, git_sha


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "session": ["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"],
            "symbol": ["AAA", "BBB", "AAA", "BBB"],
            "close": [10.0, 20.5, None, 21.0],
            "volume": [100, 200, 300, None],
            "tags": [["x"], [], None, ["y", "z"]],
        }
    )


def test_fingerprint_is_sha256_hex(frame: pl.DataFrame) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", data_fingerprint(frame))


def test_fingerprint_ignores_chunking_and_laziness(frame: pl.DataFrame) -> None:
    chunked = pl.concat([frame[:1], frame[1:3], frame[3:]], rechunk=False)
    assert chunked.n_chunks() > 1
    assert chunked.equals(frame)
    expected = data_fingerprint(frame)
    assert data_fingerprint(chunked) == expected
    assert data_fingerprint(frame.clone()) == expected
    assert data_fingerprint(chunked.lazy()) == expected


def test_fingerprint_changes_with_any_value(frame: pl.DataFrame) -> None:
    base = data_fingerprint(frame)
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(21.000001)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    assert changed["close"].to_list()[3] != frame["close"].to_list()[3]
    assert data_fingerprint(changed) != base
    filled = frame.with_columns(pl.col("close").fill_null(0.0))
    assert data_fingerprint(filled) != base
    assert data_fingerprint(frame.reverse()) != base
    assert data_fingerprint(frame.head(3)) != base


def test_fingerprint_covers_schema(frame: pl.DataFrame) -> None:
    base = data_fingerprint(frame)
    assert data_fingerprint(frame.rename({"close": "px"})) != base
    assert data_fingerprint(frame.with_columns(pl.col("volume").cast(pl.Int32))) != base
    empty = frame.clear()
    assert data_fingerprint(empty) == data_fingerprint(frame.head(0))
    assert data_fingerprint(empty) != data_fingerprint(empty.drop("tags"))


def test_fingerprint_hashes_categorical_values_not_codes() -> None:
    left = pl.DataFrame({"c": pl.Series(["cat-q", "cat-p"], dtype=pl.Categorical)})
    right = pl.DataFrame({"c": pl.Series(["cat-p", "cat-q"], dtype=pl.Categorical)}).reverse()
    assert data_fingerprint(left) == data_fingerprint(right)
    assert data_fingerprint(left) != data_fingerprint(right.reverse())
    as_enum = left.with_columns(pl.col("c").cast(pl.Enum(["cat-p", "cat-q"])))
    assert data_fingerprint(as_enum) != data_fingerprint(left)


def test_git_sha_honours_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEML_GIT_SHA", "abc123-from-ci")
    assert git_sha() == "abc123-from-ci"


def test_git_sha_falls_back_to_git_or_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEML_GIT_SHA", raising=False)
    sha = git_sha()
    assert sha == "unknown" or re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", sha)
    monkeypatch.setenv("TRADEML_GIT_SHA", "  ")
    assert git_sha() == sha


def test_git_sha_unknown_without_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEML_GIT_SHA", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    provenance._git_head.cache_clear()
    try:
        assert git_sha() == "unknown"
    finally:
        provenance._git_head.cache_clear()
