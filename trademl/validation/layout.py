"""The split layout behind a sleeve's out-of-fold (OOF) predictions, and when two layouts can
be stacked.

A CPCV layout names its session groups (first and last decision session of each), how many
groups each split tests, the embargo, and which split predicts each group on each path
(`path_splits[p][g]`). A walk-forward layout names its training cutoffs: every prediction for
a decision session after the latest cutoff came from a model that never saw that session.

The stacker fits its weights for one session group on the OTHER groups' OOF rows; that is
only honest when every sleeve's prediction for a row in group g came from a model that did
not train on group g. CPCV sleeves guarantee it for their own layout, so they must share it
exactly; a walk-forward sleeve guarantees it for any group after its last cutoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["LayoutMismatch", "SplitLayout", "common_layout", "cpcv_layout", "walk_forward_layout"]


class LayoutMismatch(ValueError):
    """OOF predictions of different sleeves cannot be combined (names them and the difference)."""


@dataclass(frozen=True)
class SplitLayout:
    """How a set of OOF predictions was produced (JSON-serializable)."""

    kind: Literal["cpcv", "walk_forward"]
    first_session: str
    last_session: str
    groups: tuple[tuple[str, str], ...] = ()
    n_test_groups: int = 0
    embargo: int = 0
    path_splits: tuple[tuple[int, ...], ...] = ()
    cutoffs: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def n_paths(self) -> int:
        return max(1, len(self.path_splits))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SplitLayout:
        return cls(
            kind=d["kind"],
            first_session=d["first_session"],
            last_session=d["last_session"],
            groups=tuple(tuple(g) for g in d.get("groups", ())),
            n_test_groups=int(d.get("n_test_groups", 0)),
            embargo=int(d.get("embargo", 0)),
            path_splits=tuple(tuple(int(x) for x in p) for p in d.get("path_splits", ())),
            cutoffs=tuple(d.get("cutoffs", ())),
            extra=dict(d.get("extra", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def fingerprint(self) -> str:
        """Short hash of what makes two layouts the same (not `extra`)."""
        d = self.to_dict()
        d.pop("extra", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def group_of(self, dates: Sequence[dt.date] | np.ndarray) -> np.ndarray:
        """Group index of each decision date (−1 outside every group); CPCV layouts only."""
        if self.kind != "cpcv":
            raise ValueError("group_of needs a CPCV layout")
        days = np.asarray(dates, dtype="datetime64[D]")
        out = np.full(days.shape, -1, dtype=np.int64)
        for g, (lo, hi) in enumerate(self.groups):
            out[(days >= np.datetime64(lo)) & (days <= np.datetime64(hi))] = g
        return out


def cpcv_layout(
    cv: Any, dates: Sequence[dt.date] | np.ndarray, session: np.ndarray, t1: np.ndarray
) -> SplitLayout:
    """The layout `CombinatorialPurgedCV` `cv` uses on samples decided at `dates` (with their
    calendar ordinals `session` and label ends `t1`)."""
    days = np.asarray(dates, dtype="datetime64[D]")
    uniq = np.unique(np.asarray(session))
    chunks = np.array_split(np.arange(uniq.size), cv.n_groups)
    order = np.argsort(session, kind="stable")
    first_day = {}
    for i in order:
        first_day.setdefault(int(session[i]), days[i])
    groups = tuple(
        (str(first_day[int(uniq[c[0]])]), str(first_day[int(uniq[c[-1]])])) for c in chunks
    )
    return SplitLayout(
        kind="cpcv",
        first_session=groups[0][0],
        last_session=groups[-1][1],
        groups=groups,
        n_test_groups=cv.n_test_groups,
        embargo=cv.embargo,
        path_splits=tuple(tuple(int(x) for x in row) for row in cv.paths()),
        extra={"max_t1": str(np.datetime64(int(np.max(t1)), "D")) if len(t1) else None},
    )


def walk_forward_layout(
    decision_dates: Sequence[dt.date], cutoffs: Sequence[dt.date]
) -> SplitLayout:
    """A walk-forward layout: predictions for `decision_dates` by models trained up to
    `cutoffs` (each prediction after the latest cutoff before it)."""
    days = sorted({str(d) for d in decision_dates})
    if not days:
        raise ValueError("a walk-forward layout needs at least one decision date")
    return SplitLayout(
        kind="walk_forward",
        first_session=days[0],
        last_session=days[-1],
        cutoffs=tuple(sorted({str(c) for c in cutoffs})),
    )


def _describe(lay: SplitLayout) -> str:
    if lay.kind == "walk_forward":
        return f"walk-forward, cutoffs {', '.join(lay.cutoffs) or 'none'}"
    return (
        f"CPCV {len(lay.groups)} groups ({lay.first_session}…{lay.last_session}), "
        f"{lay.n_test_groups} test groups, embargo {lay.embargo}"
    )


def common_layout(layouts: Mapping[str, SplitLayout]) -> SplitLayout:
    """The CPCV layout every sleeve in `layouts` can be stacked on, or LayoutMismatch.

    All CPCV layouts must be identical (groups, test groups, embargo, paths). A walk-forward
    layout fits when its latest cutoff is before the CPCV window's first session (so no
    group's rows were ever training data) and its predictions cover that window.
    """
    if not layouts:
        raise LayoutMismatch("no sleeve layouts to combine")
    cpcv = {k: v for k, v in layouts.items() if v.kind == "cpcv"}
    if not cpcv:
        raise LayoutMismatch(
            f"sleeves {sorted(layouts)} have only walk-forward layouts: the stacker needs at "
            "least one CPCV sleeve to define its session groups"
        )
    ref_name = sorted(cpcv)[0]
    ref = cpcv[ref_name]
    for name, lay in sorted(cpcv.items()):
        if lay.fingerprint == ref.fingerprint:
            continue
        diffs = [
            f"{what}: {a} vs {b}"
            for what, a, b in (
                ("groups", len(ref.groups), len(lay.groups)),
                (
                    "window",
                    f"{ref.first_session}…{ref.last_session}",
                    f"{lay.first_session}…{lay.last_session}",
                ),
                ("test groups", ref.n_test_groups, lay.n_test_groups),
                ("embargo", ref.embargo, lay.embargo),
                ("group bounds", ref.groups, lay.groups),
            )
            if a != b
        ]
        raise LayoutMismatch(
            f"OOF of {ref_name} and {name} come from different split layouts "
            f"({'; '.join(diffs[:3]) or 'paths differ'}): train both as of the same session "
            "with the same equities CPCV settings"
        )
    for name, lay in sorted(layouts.items()):
        if lay.kind != "walk_forward":
            continue
        late = [c for c in lay.cutoffs if c >= ref.first_session]
        if late:
            raise LayoutMismatch(
                f"OOF of {name} ({_describe(lay)}) and {ref_name} ({_describe(ref)}) differ: "
                f"{name} trained up to {late[-1]}, inside the CPCV window that starts "
                f"{ref.first_session}, so its predictions there are not out of fold for every "
                f"group; set its training cutoff before {ref.first_session} or leave {name} "
                "out of stacker.sleeves"
            )
        if lay.first_session > ref.first_session or lay.last_session < ref.last_session:
            raise LayoutMismatch(
                f"OOF of {name} covers {lay.first_session}…{lay.last_session}, not the CPCV "
                f"window {ref.first_session}…{ref.last_session} of {ref_name}: materialize "
                f"its OOS signals for the whole window"
            )
    return ref
