"""Serving the sizing policy: ONNX export of the deterministic policy, an onnxruntime scorer,
and save/load of the torch policy (state_dict + a JSON of params and standardization).

The ONNX graph is the same `BetaPolicyNet.forward` used in training and evaluation, with the
state standardization baked in: float32 `state` [n, n_features] → float32 `action` [n].
Its scorer, `OnnxPolicy`, lives in `onnx_policy` (numpy and onnxruntime only, no torch).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trademl.models.policy.grpo import GRPOParams
from trademl.models.policy.network import BetaPolicyNet
from trademl.models.policy.onnx_policy import ACTION_OUTPUT, STATE_INPUT, OnnxPolicy
from trademl.models.policy.sizer import GRPOSizer

__all__ = ["ONNX_OPSET", "OnnxPolicy", "load_policy", "save_policy", "to_onnx"]

ONNX_OPSET = 17
WEIGHTS_FILE, META_FILE = "policy.pt", "policy.json"


def to_onnx(model: GRPOSizer) -> bytes:
    """Serialized ONNX graph of the fitted deterministic policy (opset 17, dynamic batch).

    Uses the TorchScript exporter (dynamo=False): the dynamo exporter needs onnxscript, which
    this project does not ship. Feature names ride along as metadata `trademl.features`.
    """
    import onnx

    model._check_fitted()
    net = model.policy_.to("cpu").eval()
    example = torch.zeros(2, net.n_features)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning
        torch.onnx.export(
            net,
            (example,),
            buf,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[STATE_INPUT],
            output_names=[ACTION_OUTPUT],
            dynamic_axes={STATE_INPUT: {0: "n"}, ACTION_OUTPUT: {0: "n"}},
        )
    model.policy_.to(model.params.device)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(
        proto,
        {"trademl.model": "grpo_policy", "trademl.features": ",".join(model.feature_names_)},
    )
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _session_json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, int | str):
        return {"type": type(value).__name__, "value": value}
    raise TypeError(f"cannot store session value of type {type(value).__name__}")


def _session_from_json(d: dict[str, Any] | None) -> Any:
    if d is None:
        return None
    parse = {"datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat}
    return parse.get(d["type"], lambda v: v)(d["value"])


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def save_policy(model: GRPOSizer, directory: str | Path) -> Path:
    """Write policy.pt (the net's state_dict) and policy.json (params, features,
    standardization, fit summary) into `directory`; returns the directory."""
    model._check_fitted()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.policy_.state_dict().items()}, out / WEIGHTS_FILE)
    meta = {
        "format": 1,
        "params": dataclasses.asdict(model.params),
        "features": list(model.feature_names_),
        "state_mean": model.state_mean_.tolist(),
        "state_std": model.state_std_.tolist(),
        "vol_target": model.vol_target_,
        "best_epoch": model.best_epoch_,
        "best_val_sharpe": _finite_or_none(model.best_val_sharpe_),
        "n_train": model.n_train_,
        "n_val": model.n_val_,
        "sessions": {
            k: _session_json(getattr(model, f"{k}_")) for k in ("train_end", "val_start", "val_end")
        },
        "history": [{k: _finite_or_none(v) for k, v in h.items()} for h in model.history_],
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return out


def load_policy(directory: str | Path) -> GRPOSizer:
    """A fitted GRPOSizer from a `save_policy` directory (weights loaded with weights_only)."""
    src = Path(directory)
    meta = json.loads((src / META_FILE).read_text())
    raw = dict(meta["params"])
    raw["hidden"] = tuple(raw["hidden"])
    params = GRPOParams(**raw)
    feats = tuple(meta["features"])
    model = GRPOSizer(params=params, extra_features=feats[3:])
    if model.features != feats:
        raise ValueError(f"{META_FILE}: features {feats} do not start with y_hat, vol, trend")
    mean, std = np.asarray(meta["state_mean"]), np.asarray(meta["state_std"])
    net = BetaPolicyNet(len(feats), params.hidden, state_mean=mean, state_std=std)
    net.load_state_dict(torch.load(src / WEIGHTS_FILE, weights_only=True, map_location="cpu"))
    model.policy_ = net.to(params.device).eval()
    model.feature_names_ = feats
    model.state_mean_, model.state_std_ = mean, std
    model.vol_target_ = float(meta["vol_target"])
    model.best_epoch_ = int(meta["best_epoch"])
    bvs = meta["best_val_sharpe"]
    model.best_val_sharpe_ = math.nan if bvs is None else float(bvs)
    model.n_train_, model.n_val_ = int(meta["n_train"]), int(meta["n_val"])
    for k, v in meta["sessions"].items():
        setattr(model, f"{k}_", _session_from_json(v))
    model.history_ = [
        {k: math.nan if v is None else v for k, v in h.items()} for h in meta["history"]
    ]
    return model
