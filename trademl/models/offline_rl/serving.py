"""Serve an exported sizing policy with onnxruntime alone.

This module must stay importable without the ``rl`` extra and cheap to import in the sizing
asset: it imports numpy and onnxruntime only — never d3rlpy or torch (a test checks
``sys.modules`` in a fresh interpreter). The graph comes from `export.export_onnx`: ``obs``
float32 (N, d) → ``action`` int64 (N,) bucket indices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["OnnxBucketPolicy"]


class OnnxBucketPolicy:
    """A greedy bucket policy read from ONNX: states → bucket index, one-hot probs, sizes.

    Parameters
    ----------
    model : path of the ``.onnx`` file, or its bytes.
    buckets : the K size multipliers, in action order. None reads them from the model's
        ``trademl.buckets`` metadata; given, they must match it when it is present (a policy
        served with the wrong bucket table would size every order wrong).
    threads : onnxruntime intra-op threads (1: the policy is a small MLP, and one thread keeps
        scoring deterministic and off the other workers' cores).
    """

    def __init__(
        self,
        model: str | Path | bytes,
        buckets: Sequence[float] | None = None,
        *,
        threads: int = 1,
    ) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(Path(model))
        self._session = ort.InferenceSession(
            source, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        meta = self._session.get_modelmeta().custom_metadata_map
        stored = json.loads(meta["trademl.buckets"]) if "trademl.buckets" in meta else None
        if buckets is None:
            if stored is None:
                raise ValueError("OnnxBucketPolicy: no buckets given and none in the model")
            buckets = stored
        self.buckets: tuple[float, ...] = tuple(float(b) for b in buckets)
        if stored is not None and not np.allclose(stored, self.buckets, rtol=0, atol=1e-12):
            raise ValueError(
                f"OnnxBucketPolicy: buckets {self.buckets} differ from the model's {stored}"
            )
        if not self.buckets:
            raise ValueError("OnnxBucketPolicy: empty bucket table")
        self.algo: str | None = meta.get("trademl.algo")
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        width = inp.shape[1] if len(inp.shape) == 2 else None
        self.obs_dim: int | None = width if isinstance(width, int) else None

    @property
    def n_actions(self) -> int:
        return len(self.buckets)

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """Greedy bucket index per state.

        Parameters
        ----------
        obs : (N, d) states (a single (d,) state is accepted); cast to float32.

        Returns
        -------
        (N,) int64 indices into `buckets`.
        """
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or (self.obs_dim is not None and x.shape[1] != self.obs_dim):
            raise ValueError(f"OnnxBucketPolicy: obs must be (N, {self.obs_dim}), got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros(0, np.int64)
        if not np.isfinite(x).all():
            raise ValueError("OnnxBucketPolicy: non-finite state")
        (out,) = self._session.run(None, {self._input: np.ascontiguousarray(x)})
        a = np.asarray(out, dtype=np.int64).reshape(-1)
        if a.size and (a.min() < 0 or a.max() >= self.n_actions):
            raise ValueError("OnnxBucketPolicy: model output outside the bucket table")
        return a

    def probs(self, obs: np.ndarray) -> np.ndarray:
        """One-hot (N, K) float64 action probabilities (the greedy policy), for OPE."""
        a = self.actions(obs)
        out = np.zeros((a.shape[0], self.n_actions))
        out[np.arange(a.shape[0]), a] = 1.0
        return out

    def sizes(self, obs: np.ndarray) -> np.ndarray:
        """(N,) float64 size multiplier per state, ``buckets[actions(obs)]``."""
        return np.asarray(self.buckets, dtype=np.float64)[self.actions(obs)]
