"""Honest validation: purged, embargoed cross-validation over session-grouped samples."""

from trademl.validation.cpcv import CombinatorialPurgedCV, SplitInfo, session_ordinals

__all__ = ["CombinatorialPurgedCV", "SplitInfo", "session_ordinals"]
