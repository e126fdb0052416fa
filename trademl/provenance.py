"""Provenance stamps for tracked runs: which code (git SHA) and which data (fingerprint).

Pure Python (no Dagster) so research code and tests can use it directly.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import polars as pl

GIT_SHA_ENV = "TRADEML_GIT_SHA"
UNKNOWN_SHA = "unknown"
REPO_ROOT = Path(__file__).resolve().parent.parent

_GIT_TIMEOUT_S = 5.0
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Two independent row hashes give 128 bits per row, so collisions are not a practical concern.
_ROW_HASH_SEEDS = (0x5EED_0001, 0x5EED_0002)


def git_sha() -> str:
    """The code version: $TRADEML_GIT_SHA (images lack .git), else git HEAD, else "unknown"."""
    from_env = os.environ.get(GIT_SHA_ENV, "").strip()
    return from_env or _git_head()


@lru_cache(maxsize=1)
def _git_head() -> str:
    """`git rev-parse HEAD` in the repo root; "unknown" if git, the repo or a commit is missing."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_SHA
    sha = out.stdout.strip()
    return sha if _SHA_RE.match(sha) else UNKNOWN_SHA


def data_fingerprint(df: pl.DataFrame | pl.LazyFrame) -> str:
    """SHA-256 hex over schema and row contents: equal frames match regardless of chunking.

    Built on `hash_rows`, so it is stable within one Polars version only; row order matters.
    """
    frame = df.collect() if isinstance(df, pl.LazyFrame) else df
    digest = hashlib.sha256()
    for name, dtype in frame.schema.items():
        digest.update(f"{name!r}:{dtype}\n".encode())
    digest.update(f"rows={frame.height}\n".encode())
    if frame.width and frame.height:
        # Categorical codes depend on the string cache; hash the values, not the codes.
        values = frame.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))
        for seed in _ROW_HASH_SEEDS:
            digest.update(values.hash_rows(seed=seed).to_numpy().astype("<u8").tobytes())
    return digest.hexdigest()


def source_hash(folder: Path, names: Sequence[str]) -> str:
    """A hash of a model package's own source files: a change to them is a new code version
    (what a version key records beside the settings and the data window)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]
