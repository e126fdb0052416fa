"""Serving an exported sizing policy with onnxruntime: numpy in, sizes and positions out.

Importing this module never imports torch (the graph was exported by `serving.to_onnx`), so
the daily `policy_actions` step pays for onnxruntime only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl

from trademl.models.policy.actions import position

__all__ = ["ACTION_OUTPUT", "STATE_INPUT", "OnnxPolicy"]

STATE_INPUT, ACTION_OUTPUT = "state", "action"


class OnnxPolicy:
    """onnxruntime scorer of an exported policy: act (size in (0, 2)) and positions."""

    def __init__(self, model: bytes | str | Path) -> None:
        blob = Path(model).read_bytes() if isinstance(model, str | Path) else model
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self._session = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        meta = self._session.get_modelmeta().custom_metadata_map
        if "trademl.features" not in meta:
            raise ValueError("not a trademl policy graph: metadata 'trademl.features' missing")
        self.feature_names: tuple[str, ...] = tuple(meta["trademl.features"].split(","))

    def _state(self, data: np.ndarray | pl.DataFrame) -> np.ndarray:
        if isinstance(data, pl.DataFrame):
            missing = [c for c in self.feature_names if c not in data.columns]
            if missing:
                raise ValueError(f"frame is missing state columns {missing}")
            data = data.select(self.feature_names).to_numpy()
        state = np.ascontiguousarray(data, dtype=np.float32)
        if state.ndim != 2 or state.shape[1] != len(self.feature_names):
            raise ValueError(
                f"state must be [n, {len(self.feature_names)}] ({self.feature_names}), "
                f"got shape {state.shape}"
            )
        return state

    def act(self, data: np.ndarray | pl.DataFrame) -> np.ndarray:
        """Deterministic size per row (float64), from an array in feature order or a frame."""
        (out,) = self._session.run([ACTION_OUTPUT], {STATE_INPUT: self._state(data)})
        return out.astype(np.float64)

    def positions(self, data: np.ndarray | pl.DataFrame) -> np.ndarray:
        """Signed positions size·sign(y_hat); y_hat is the first feature."""
        state = self._state(data)
        return position(self.act(state), state[:, 0].astype(np.float64))
