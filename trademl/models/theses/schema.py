"""The JSON Schema of a thesis, the document a prediction becomes, and validation that names
the failing path. `valid_mask` is the same rule over a batch of sampled structures (what the
reinforcement reward reads), tested to agree with the schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trademl.models.theses.model import DECISIONS, SECTIONS

__all__ = ["THESIS_SCHEMA", "ThesisSchemaError", "thesis_document", "valid_mask", "validate"]

THESIS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "TradeML thesis",
    "type": "object",
    "additionalProperties": False,
    "required": ["symbol", "date", "sections", "claims", "decision", "confidence", "model_version"],
    "properties": {
        "symbol": {"type": "string", "minLength": 1},
        "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "sections": {
            "type": "array",
            "items": {"enum": list(SECTIONS)},
            "uniqueItems": True,
            "allOf": [{"contains": {"const": "summary"}}, {"contains": {"const": "decision"}}],
        },
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["claim", "holds", "evidence"],
                "properties": {
                    "claim": {"type": "string", "minLength": 1},
                    # does the claim's rule hold on the evidence? (a thesis is checkable)
                    "holds": {"type": "boolean"},
                    "evidence": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "number"},
                    },
                },
            },
        },
        "decision": {"enum": list(DECISIONS)},
        "confidence": {"type": "number", "minimum": 0.0, "maximum": 1.0},
        "model_version": {"type": "string"},
    },
    # a thesis that asserts evidence claims has an evidence section
    "if": {"properties": {"claims": {"minItems": 1}}},
    "then": {"properties": {"sections": {"contains": {"const": "evidence"}}}},
}


class ThesisSchemaError(ValueError):
    """A thesis that does not match the schema; `path` is the failing JSON path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"thesis invalid at {path}: {message}")
        self.path = path


def validate(doc: Mapping[str, Any]) -> None:
    """Raise `ThesisSchemaError` naming the failing path (the most relevant error)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(THESIS_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        raise ThesisSchemaError(error.json_path, error.message)


def is_valid(doc: Mapping[str, Any]) -> bool:
    try:
        validate(doc)
    except ThesisSchemaError:
        return False
    return True


def valid_mask(structure: np.ndarray, claims: np.ndarray) -> np.ndarray:
    """Per row of sampled sections (batch × 6) and claims (batch × C): does the thesis they
    make pass the schema? (summary and decision written; evidence written when a claim is
    asserted.)"""
    s = np.asarray(structure) > 0.5
    asserted = (np.asarray(claims) > 0.5).any(axis=1)
    at = {name: i for i, name in enumerate(SECTIONS)}
    return s[:, at["summary"]] & s[:, at["decision"]] & (~asserted | s[:, at["evidence"]])


def thesis_document(
    *,
    symbol: str,
    date: str,
    structure: Sequence[float],
    claims: Sequence[float],
    decision: int,
    confidence: float,
    claim_names: Sequence[str],
    evidence: Mapping[str, Mapping[str, float]],
    model_version: str,
    holds: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """The JSON document of one prediction: the sections written, each asserted claim with
    the feature values its rule reads (`evidence`: claim → feature → value; a missing value
    is left out, and a claim without any fails the schema) and whether its rule holds on
    them (`holds`: claim → bool; unknown is false), the decision."""
    holds = holds or {}
    return {
        "symbol": symbol,
        "date": date,
        "sections": [name for name, on in zip(SECTIONS, structure, strict=True) if on > 0.5],
        "claims": [
            {
                "claim": name,
                "holds": bool(holds.get(name, False)),
                "evidence": {
                    k: float(v) for k, v in evidence[name].items() if np.isfinite(float(v))
                },
            }
            for name, on in zip(claim_names, claims, strict=True)
            if on > 0.5
        ],
        "decision": DECISIONS[int(decision)],
        "confidence": float(confidence),
        "model_version": model_version,
    }
