"""Cross-sectional equities alpha models: GBDT estimators, sample weights, ONNX scoring.

Names are resolved lazily so that `OnnxScorer` (inference) never imports lightgbm/catboost
and importing the package stays cheap; the estimator modules import their engines on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trademl.lazy import lazy_exports

if TYPE_CHECKING:
    from trademl.models.equities.estimators import (
        AlphaEstimator,
        CatBoostAlpha,
        LGBMAlpha,
        make_estimator,
    )
    from trademl.models.equities.onnx_export import OnnxScorer, to_onnx
    from trademl.models.equities.weights import market_vol_regime, time_decay_weights

_EXPORTS: dict[str, str] = {
    "AlphaEstimator": "estimators",
    "CatBoostAlpha": "estimators",
    "LGBMAlpha": "estimators",
    "make_estimator": "estimators",
    "OnnxScorer": "onnx_export",
    "to_onnx": "onnx_export",
    "market_vol_regime": "weights",
    "time_decay_weights": "weights",
}

__all__ = [
    "AlphaEstimator",
    "CatBoostAlpha",
    "LGBMAlpha",
    "OnnxScorer",
    "make_estimator",
    "market_vol_regime",
    "time_decay_weights",
    "to_onnx",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
