"""ONNX export of a trained sizing policy (training side: imports torch and d3rlpy lazily).

d3rlpy's own ``save_policy("x.onnx")`` fails on torch 2.13 (the default exporter is now the
dynamo one, and d3rlpy hands it a traced ScriptFunction, which is not an ``nn.Module``). So
the export goes through the TorchScript policy instead: ``save_policy("policy.pt")`` (the
greedy policy with its observation scaler, and for IQL its action scaler), ``torch.jit.load``,
wrapped in a small ``nn.Module`` that turns the output into a bucket index, and exported with
the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``).

The ONNX graph: input ``obs`` float32 (N, d), output ``action`` int64 (N,) — the bucket
index, for CQL the argmax of the Q-values, for the Decision Transformer the argmax of its
action logits given R*, for IQL the bucket nearest the actor's multiplier
(float32 ``argmin |size − bucket|``, ties → lower index, as `algos.nearest_bucket`). Metadata
``trademl.buckets`` / ``trademl.algo`` / ``trademl.obs_dim`` travel in the model so serving can
check them (`serving.OnnxBucketPolicy`).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

from trademl.models.offline_rl.algos import TrainedPolicy, import_d3rlpy, quiet

__all__ = ["ONNX_INPUT", "ONNX_OUTPUT", "OPSET", "export_onnx"]

ONNX_INPUT = "obs"
ONNX_OUTPUT = "action"
OPSET = 17


def _cpu_learner(policy: TrainedPolicy, tmp: Path) -> Any:
    """The policy's d3rlpy learner on CPU (a GPU-trained one is saved and reloaded on CPU,
    so the traced graph holds no CUDA tensors)."""
    learner = policy.learner
    if str(getattr(learner, "_device", "cpu")).startswith("cpu"):
        return learner
    d3rlpy = import_d3rlpy()
    path = tmp / "model.d3"
    learner.save(str(path))
    return d3rlpy.load_learnable(str(path), device="cpu:0")


def _bucket_head(script: Any, policy: TrainedPolicy) -> Any:
    """TorchScript module around the loaded TorchScript policy that outputs int64 bucket
    indices (scripted, not traced: a loaded ScriptModule cannot be called inside a trace)."""
    import torch

    class BucketHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = script
            self.discrete = policy.algo == "cql"
            self.register_buffer("buckets", torch.tensor(policy.buckets, dtype=torch.float32))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            out = self.policy(obs)
            if self.discrete:
                return out.reshape(-1).to(torch.int64)
            gap = torch.abs(out.reshape(-1, 1) - self.buckets.reshape(1, -1))
            return torch.argmin(gap, dim=1)

    return torch.jit.script(BucketHead().eval())


def export_onnx(policy: TrainedPolicy, path: str | Path | None = None) -> bytes:
    """Export `policy` as an ONNX graph mapping states to bucket indices.

    Parameters
    ----------
    policy : a trained CQL or IQL policy.
    path : where to write the ``.onnx`` file too (parents created); None only returns bytes.

    Returns
    -------
    The serialized ONNX model (what `serving.OnnxBucketPolicy` and MLflow take).
    """
    import onnx
    import torch

    with tempfile.TemporaryDirectory(prefix="trademl-onnx-") as tmp_dir:
        tmp = Path(tmp_dir)
        with quiet():
            learner = _cpu_learner(policy, tmp)
            if policy.algo == "dt":  # traced: R*, the scaler and the transformer, greedy
                from trademl.models.offline_rl.decision_transformer import onnx_head

                assert policy.target_return is not None
                head = onnx_head(learner, policy.target_return)
            else:
                learner.save_policy(str(tmp / "policy.pt"))
                script = torch.jit.load(str(tmp / "policy.pt"), map_location="cpu")
                head = _bucket_head(script, policy)
            buf = io.BytesIO()
            torch.onnx.export(
                head,
                (torch.zeros(2, policy.obs_dim, dtype=torch.float32),),
                buf,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
    model = onnx.load_from_string(buf.getvalue())
    meta = {
        "trademl.algo": policy.algo,
        "trademl.buckets": json.dumps(list(policy.buckets)),
        "trademl.obs_dim": str(policy.obs_dim),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return data
