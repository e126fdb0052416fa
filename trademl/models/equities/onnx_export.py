"""ONNX export of fitted alpha estimators and a lightweight onnxruntime scorer.

`to_onnx` converts LightGBM via onnxmltools (raw `Booster`, `target_opset=15`, the highest
its LightGBM converter supports; no ZipMap) and CatBoost via its native exporter (ZipMap
removed). Every graph takes one float32 [n, n_features] input and yields either a single
regression tensor or a float32 `probabilities` tensor [n, 2]. `OnnxScorer` needs only
numpy and onnxruntime: it never imports lightgbm, catboost or onnxmltools.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    import onnx

    from trademl.models.equities.estimators import AlphaEstimator, CatBoostAlpha, LGBMAlpha

__all__ = ["LGBM_TARGET_OPSET", "OnnxScorer", "to_onnx"]

LGBM_TARGET_OPSET = 15
PROBA_OUTPUT = "probabilities"


def to_onnx(model: AlphaEstimator, n_features: int) -> bytes:
    """Serialized ONNX model equivalent to the fitted `model`'s `predict` (float32 input)."""
    from trademl.models.equities.estimators import CatBoostAlpha, LGBMAlpha

    if not isinstance(model, LGBMAlpha | CatBoostAlpha):
        raise TypeError(f"expected LGBMAlpha or CatBoostAlpha, got {type(model).__name__}")
    model._check_fitted()
    if n_features != model.n_features_in_:
        raise ValueError(f"n_features={n_features} but the model has {model.n_features_in_}")
    if isinstance(model, LGBMAlpha):
        proto, kind = _lgbm_to_onnx(model, n_features), "lgbm"
    else:
        proto, kind = _catboost_to_onnx(model, n_features), "catboost"
    import onnx

    task = "classification" if model.is_classifier else "regression"
    onnx.helper.set_model_props(
        proto,
        {"trademl.estimator": kind, "trademl.task": task, "trademl.n_features": str(n_features)},
    )
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _lgbm_to_onnx(model: LGBMAlpha, n_features: int) -> onnx.ModelProto:
    """onnxmltools on the raw Booster: objective read from the model text (binary → classifier)."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    return convert_lightgbm(
        model.booster_,
        name="trademl_lgbm",
        initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset=LGBM_TARGET_OPSET,
        zipmap=False,
    )


def _catboost_to_onnx(model: CatBoostAlpha, n_features: int) -> onnx.ModelProto:
    """CatBoost's native exporter; the classifier's ZipMap is stripped to a [n, 2] tensor."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="trademl-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        model.model_.save_model(
            str(path), format="onnx", export_parameters={"onnx_graph_name": "trademl_catboost"}
        )
        proto = onnx.load_from_string(path.read_bytes())
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != n_features:
        raise ValueError(f"CatBoost exported an input of shape {dims}, expected [N, {n_features}]")
    _strip_zipmap(proto)
    return proto


def _strip_zipmap(proto: onnx.ModelProto) -> None:
    """Replace each ZipMap's seq(map) graph output by the probability tensor it wraps."""
    from onnx import TensorProto, helper

    graph = proto.graph
    for node in [n for n in graph.node if n.op_type == "ZipMap"]:
        src, dst = node.input[0], node.output[0]
        labels = next(a for a in node.attribute if a.name.startswith("classlabels"))
        n_classes = len(labels.ints) or len(labels.strings)
        graph.node.remove(node)
        for producer in graph.node:
            for i, name in enumerate(producer.output):
                if name == src:
                    producer.output[i] = dst
        outputs = [
            helper.make_tensor_value_info(dst, TensorProto.FLOAT, ["N", n_classes])
            if o.name == dst
            else o
            for o in graph.output
        ]
        del graph.output[:]
        graph.output.extend(outputs)


class OnnxScorer:
    """Score an exported model with onnxruntime: float32 [n, k] in, float64 [n] out.

    Returns the regression value, or P(class 1) when the graph has a `probabilities`
    output (a [n, 2] tensor, or a ZipMap sequence of maps from a raw CatBoost export).
    """

    def __init__(self, onnx_bytes: bytes, *, n_threads: int = 1) -> None:
        self.onnx_bytes = bytes(onnx_bytes)
        self.n_threads = n_threads
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # converters declare a static shape for `label`
        opts.intra_op_num_threads = n_threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            self.onnx_bytes, opts, providers=["CPUExecutionProvider"]
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected one input, the graph has {len(inputs)}")
        self.input_name: str = inputs[0].name
        width = inputs[0].shape[-1] if len(inputs[0].shape) == 2 else None
        self.n_features: int | None = width if isinstance(width, int) else None
        outputs = {o.name: o for o in self._session.get_outputs()}
        if PROBA_OUTPUT in outputs:
            self.output_name = PROBA_OUTPUT
            kind = outputs[PROBA_OUTPUT].type
            self._mode = "proba_map" if kind.startswith("seq") else "proba"
        else:
            floats = [o.name for o in outputs.values() if o.type == "tensor(float)"]
            if len(floats) != 1:
                raise ValueError(f"cannot pick the prediction among outputs {list(outputs)}")
            self.output_name, self._mode = floats[0], "value"
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    @property
    def is_classifier(self) -> bool:
        """True when `predict` returns P(class 1)."""
        return self._mode != "value"

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of `X` (cast to float32; NaN means missing)."""
        x = np.ascontiguousarray(X, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {x.shape}")
        if self.n_features is not None and x.shape[1] != self.n_features:
            raise ValueError(f"X has {x.shape[1]} features, the model expects {self.n_features}")
        out: Any = self._session.run([self.output_name], {self.input_name: x})[0]
        if self._mode == "proba":
            return np.asarray(out, dtype=np.float64)[:, 1]
        if self._mode == "proba_map":
            return np.array([row[1] for row in out], dtype=np.float64)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the ONNX bytes; the session is rebuilt on load."""
        return (_rebuild_scorer, (self.onnx_bytes, self.n_threads))


def _rebuild_scorer(onnx_bytes: bytes, n_threads: int) -> OnnxScorer:
    return OnnxScorer(onnx_bytes, n_threads=n_threads)
