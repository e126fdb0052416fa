"""The stacker: a meta-model over the alpha sleeves' out-of-fold predictions (NNLS by default,
positive ridge or a shallow monotone LightGBM), with its own nested out-of-sample record.

Names resolve lazily (PEP 562) so serving (`StackerModel`, `zscore_columns`) never imports
lightgbm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trademl.lazy import lazy_exports

if TYPE_CHECKING:
    from trademl.models.stacker.model import StackerModel
    from trademl.models.stacker.normalize import xs_zscore, zscore_columns
    from trademl.models.stacker.promotion import decide
    from trademl.models.stacker.train import SleeveOOF, StackerFit, align_oof, train_stacker

_EXPORTS: dict[str, str] = {
    "StackerModel": "model",
    "xs_zscore": "normalize",
    "zscore_columns": "normalize",
    "decide": "promotion",
    "SleeveOOF": "train",
    "StackerFit": "train",
    "align_oof": "train",
    "train_stacker": "train",
}

__all__ = [
    "SleeveOOF",
    "StackerFit",
    "StackerModel",
    "align_oof",
    "decide",
    "train_stacker",
    "xs_zscore",
    "zscore_columns",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
