"""Split layouts: what CPCV records, and which layouts the stacker may combine."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from trademl.data.calendar import get_calendar
from trademl.validation.cpcv import CombinatorialPurgedCV
from trademl.validation.layout import (
    LayoutMismatch,
    SplitLayout,
    common_layout,
    cpcv_layout,
    walk_forward_layout,
)

SESS = get_calendar("XNYS", dt.date(2023, 1, 3)).sessions[:40]


def _cpcv(n_groups: int = 4, embargo: int = 2, sessions=SESS) -> SplitLayout:
    cv = CombinatorialPurgedCV(n_groups=n_groups, n_test_groups=2, embargo=embargo)
    idx = np.repeat(np.arange(len(sessions)), 3)  # three names per session
    dates = np.repeat(np.array(sessions, dtype="datetime64[D]"), 3)
    return cpcv_layout(cv, dates, idx, idx + 2)


def test_cpcv_layout_records_groups_paths_and_round_trips_json():
    lay = _cpcv()
    # 40 sessions in 4 groups of 10: array_split boundaries, by date
    assert lay.groups[0] == (str(SESS[0]), str(SESS[9])) and lay.groups[3][1] == str(SESS[39])
    assert lay.n_paths == 3 and lay.path_splits[0] == (0, 0, 1, 2)  # C(4, 2) splits
    assert SplitLayout.from_dict(lay.to_dict()) == lay
    assert lay.group_of(
        np.array([SESS[0], SESS[10], SESS[39]], dtype="datetime64[D]")
    ).tolist() == [0, 1, 3]


def test_identical_cpcv_layouts_combine_and_any_difference_is_named():
    assert common_layout({"a": _cpcv(), "b": _cpcv()}) == _cpcv()
    with pytest.raises(LayoutMismatch, match=r"a and b .*groups: 4 vs 5"):
        common_layout({"a": _cpcv(), "b": _cpcv(n_groups=5)})
    with pytest.raises(LayoutMismatch, match=r"embargo: 2 vs 3"):
        common_layout({"a": _cpcv(), "b": _cpcv(embargo=3)})
    with pytest.raises(LayoutMismatch, match="window"):
        common_layout({"a": _cpcv(), "b": _cpcv(sessions=SESS[:39])})


def test_walk_forward_layouts_combine_only_when_out_of_sample_for_the_whole_window():
    before = SESS[0] - dt.timedelta(days=10)
    ok = walk_forward_layout(SESS, [before])
    assert common_layout({"a": _cpcv(), "wf": ok}) == _cpcv()
    with pytest.raises(LayoutMismatch, match=r"wf .*trained up to"):
        common_layout({"a": _cpcv(), "wf": walk_forward_layout(SESS, [SESS[5]])})
    with pytest.raises(LayoutMismatch, match="covers"):
        common_layout({"a": _cpcv(), "wf": walk_forward_layout(SESS[3:], [before])})
    with pytest.raises(LayoutMismatch, match="only walk-forward"):
        common_layout({"wf": ok})
