"""An agent's files: the stable-baselines3 archive (what a finetune starts from) and the ONNX
graph that serves it — observation → target weights (names, then cash), the deterministic
action clipped to [−1, 1] and put through the env's softmax — checked against the trained
policy (`OnnxAgent`)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from trademl.models.agents.env import weights_of
from trademl.models.agents.train import AgentParams, _algo_class, _quiet

__all__ = ["ARCHIVE", "ONNX_FILE", "OnnxAgent", "export_onnx", "load_agent", "save_agent"]

ARCHIVE = "agent.zip"
ONNX_FILE = "agent.onnx"
META = "agent.json"
ONNX_INPUT, ONNX_OUTPUT = "observation", "weights"
OPSET = 17


def _head(model: Any, algo: str, temperature: float) -> Any:
    """A torch module: observations → weights, as `WeeklyPortfolioEnv` turns actions into
    them."""
    import torch

    policy = model.policy.to("cpu").eval()

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            if algo == "ppo":
                action = self.policy(obs, deterministic=True)[0]
            else:
                action = self.policy.actor(obs, deterministic=True)
            return torch.softmax(torch.clamp(action, -1.0, 1.0) * temperature, dim=-1)

    return Head()


def export_onnx(model: Any, params: AgentParams) -> bytes:
    """The agent's ONNX graph (batch of observations → batch of weights)."""
    import onnx
    import torch

    obs_dim = int(model.observation_space.shape[0])
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            _head(model, params.algo, params.temperature),
            (torch.zeros(2, obs_dim, dtype=torch.float32),),
            buf,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    graph = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def save_agent(model: Any, params: AgentParams, symbols: list[str], folder: Path) -> None:
    """Write the archive, the ONNX graph and the names/settings it was trained with."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder / ARCHIVE))
    (folder / ONNX_FILE).write_bytes(export_onnx(model, params))
    meta = {"algo": params.algo, "temperature": params.temperature, "symbols": list(symbols)}
    (folder / META).write_text(json.dumps(meta, indent=1))


def load_agent(folder: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """(the stable-baselines3 model, its meta: algo, temperature, symbols) from `folder`."""
    meta = json.loads((folder / META).read_text())
    with _quiet():
        model = _algo_class(meta["algo"]).load(str(folder / ARCHIVE), device=device)
    return model, meta


class OnnxAgent:
    """The served agent: observations → target weights (names, then cash)."""

    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

    def weights(self, obs: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        return self._session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]


def trained_weights(model: Any, obs: np.ndarray, temperature: float) -> np.ndarray:
    """The trained policy's weights for one observation (what the ONNX graph must give)."""
    action, _ = model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)
    return weights_of(action, temperature)
