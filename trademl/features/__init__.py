"""Point-in-time features: the registry, the polars builder and the FeatureStore."""

from trademl.features.build import build_features
from trademl.features.registry import (
    BY_NAME,
    REGISTRY,
    FeatureDef,
    base_feature_names,
    feature_names,
    required_history,
)
from trademl.features.store import FeatureOrderError, FeatureStore

__all__ = [
    "BY_NAME",
    "REGISTRY",
    "FeatureDef",
    "FeatureOrderError",
    "FeatureStore",
    "base_feature_names",
    "build_features",
    "feature_names",
    "required_history",
]
