"""Promotion after a shadow record (`<sleeve>.promotion.min_shadow_sessions` N > 0).

A challenger that clears every bar of its gate is *held* instead of promoted: it is the
sleeve's newest registered version, so it trades in the shadow from its as-of session on
(`shadow_weights`, book ``<sleeve>@<version>``). The sleeve's next training run reviews it
first: with at least N shadow sessions by then, it is promoted as of that session (a row of
the model table with event ``shadow_record``) — before the new snapshot is judged, so the new
one faces it as the champion. A held version that a newer one superseded stopped trading in
the shadow and is never promoted. With N = 0 a passing challenger is promoted at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from resources.lake import Lake
from trademl_assets.history import champion_as_of

SHADOW_TABLE = "shadow_weights"


def shadow_sessions(lake: Lake, book: str, start: dt.date, end: dt.date) -> int:
    """Sessions in [start, end] on which `book` traded in the shadow."""
    keys = [k for k in lake.partitions(SHADOW_TABLE) if str(start) <= k <= str(end)]
    if not keys:
        return 0
    frame = lake.scan(SHADOW_TABLE, keys).filter(pl.col("book") == book).select("date")
    return int(frame.collect().get_column("date").n_unique())


def review(
    lake: Lake,
    name: str,
    registered: pl.DataFrame,
    history: pl.DataFrame,
    as_of: dt.date,
    needed: int,
) -> tuple[dict[str, Any] | None, str]:
    """The newest version trained before `as_of`, if held for its shadow record and now
    proven: (its promotion row as of `as_of`, why) — else (None, why not)."""
    trained = (
        registered.filter((pl.col("date") < as_of) & (pl.col("event") == "trained"))
        if "event" in registered.columns
        else registered.clear()
    )
    if trained.height == 0:
        return None, "no earlier version"
    newest = trained.row(-1, named=True)
    champ = champion_as_of(history, as_of)
    if not newest.get("held") or (champ and str(champ["version"]) == str(newest["version"])):
        return None, f"v{newest['version']} is not held for a shadow record"
    book = f"{name}@{newest['version']}"
    record = shadow_sessions(lake, book, newest["date"], as_of)
    why = f"v{newest['version']} traded {record} of {needed} shadow sessions since {newest['date']}"
    if record < needed:
        return None, why
    return {
        **newest,
        "date": as_of,
        "passed_gate": True,
        "held": False,
        "event": "shadow_record",
        "verdict": f"every bar passed at {newest['date']}; {why}: promoted",
    }, why
