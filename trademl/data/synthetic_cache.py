"""The synthetic market kept on disk, so a new session costs one session of simulation.

Simulating 20 years of 3,000 names takes ≈ 11 s, and every process (each Dagster run) used
to redo it to emit one new session. The simulation chunks exactly (`synthetic.simulate`),
so the folder keeps what was generated — one parquet file of bars per generated chunk and
the carry into the next session — and a later end date simulates only the sessions after
it. Files are written atomically (chunk first, then the carry that lists it), keyed by the
market's spec, calendar and generator version, so a changed spec never reads stale bars.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from trademl.io import write_bytes_atomic

if TYPE_CHECKING:
    from trademl.data.synthetic import Carry, SyntheticMarket

#: Bump when the generator's numbers change: old folders are then ignored.
GENERATOR_VERSION = 1


def market_folder(market: SyntheticMarket, root: str | os.PathLike[str]) -> Path:
    """`root/synthetic-<key>`: one folder per (spec, calendar, generator version)."""
    ident = {
        "spec": {k: str(v) for k, v in asdict(market.spec).items()},
        "exchange": market.calendar.exchange,
        "first": str(market.calendar.first),
        "version": GENERATOR_VERSION,
    }
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root) / f"synthetic-{key}"


def _read_carry(folder: Path, market: SyntheticMarket) -> tuple[Carry, list[tuple[int, int]]]:
    from trademl.data.synthetic import Carry

    path = folder / "carry.npz"
    if not path.exists():
        return Carry.start(market), []
    with np.load(path) as z:
        values = {f.name: z[f.name] for f in fields(Carry)}
        chunks = [(int(a), int(b)) for a, b in z["chunks"]]
    values["t"], values["stressed"] = int(values["t"]), bool(values["stressed"])
    return Carry(**values), chunks


def _write_carry(folder: Path, carry: Carry, chunks: list[tuple[int, int]]) -> None:
    buf = io.BytesIO()
    arrays = {f.name: np.asarray(getattr(carry, f.name)) for f in fields(carry)}
    np.savez(buf, chunks=np.array(chunks, dtype=np.int64).reshape(-1, 2), **arrays)
    write_bytes_atomic(folder / "carry.npz", buf.getvalue())


def cached_generate(
    market: SyntheticMarket, root: str | os.PathLike[str], start: dt.date | None, end: dt.date
) -> tuple[pl.DataFrame, tuple]:
    """Bars for start ≤ date ≤ end and the ground truth as of `end`, simulating only the
    sessions the folder does not hold yet."""
    from trademl.data.synthetic import bars_frame, simulate, truth_of

    sessions = market.sessions(end)
    if not sessions:
        raise ValueError(f"no sessions between data.start={market.spec.start} and {end}")
    folder = market_folder(market, root)
    carry, chunks = _read_carry(folder, market)
    fresh: pl.DataFrame | None = None
    if carry.t < len(sessions):
        t0 = carry.t
        rows, carry = simulate(market, carry, len(sessions))
        fresh = bars_frame(market, sessions[t0:], rows)
        buf = io.BytesIO()
        fresh.write_parquet(buf, compression="zstd", statistics=True)
        write_bytes_atomic(folder / f"bars-{t0:06d}-{carry.t:06d}.parquet", buf.getvalue())
        chunks = [*chunks, (t0, carry.t)]
        _write_carry(folder, carry, chunks)
    first = 0 if start is None else len(market.sessions(start - dt.timedelta(days=1)))
    parts = []
    for t0, t1 in chunks:
        if t1 <= first or t0 >= len(sessions):
            continue
        if fresh is not None and (t0, t1) == chunks[-1]:
            parts.append(fresh.lazy())
        else:
            parts.append(pl.scan_parquet(folder / f"bars-{t0:06d}-{t1:06d}.parquet"))
    lo = start or sessions[0]
    bars = pl.concat(parts).filter(pl.col("date").is_between(lo, end)).collect()
    return bars, truth_of(market.spec, sessions, carry)
