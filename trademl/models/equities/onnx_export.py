"""ONNX export of fitted alpha estimators and a lightweight onnxruntime scorer.

`to_onnx` converts LightGBM via onnxmltools (raw `Booster`, `target_opset=15`, the highest
its LightGBM converter supports; no ZipMap) and CatBoost via its native exporter (ZipMap
removed). Every graph takes one float32 [n, n_features] input and yields either a single
regression tensor or a float32 `probabilities` tensor [n, 2]. `OnnxScorer` needs only
numpy and onnxruntime: it never imports lightgbm, catboost or onnxmltools.

`lgbm_tree_ensemble` writes LightGBM model text directly as one float64 `TreeEnsemble`
(ai.onnx.ml opset 5), and `LGBMExactScorer` runs it to reproduce `Booster.predict` bit for
bit, about twice as fast; CPCV scores its test folds with it.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

    from trademl.models.equities.estimators import AlphaEstimator, CatBoostAlpha, LGBMAlpha

__all__ = ["LGBM_TARGET_OPSET", "LGBMExactScorer", "OnnxScorer", "lgbm_tree_ensemble", "to_onnx"]

LGBM_TARGET_OPSET = 15
PROBA_OUTPUT = "probabilities"


def to_onnx(model: AlphaEstimator, n_features: int) -> bytes:
    """Serialized ONNX model equivalent to the fitted `model`'s `predict` (float32 input)."""
    from trademl.models.equities.estimators import CatBoostAlpha, LGBMAlpha
    from trademl.models.linear.estimator import LinearAlpha

    if isinstance(model, LinearAlpha):
        if n_features != model.n_features_in_:
            raise ValueError(f"n_features={n_features} but the model has {model.n_features_in_}")
        return model.to_onnx()
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
        import onnxruntime as ort  # on first scorer: loading the code location never pays for it

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


# LightGBM's kZeroThreshold, a float literal: a dense input with |x| <= it is read as 0.0.
_LGB_ZERO = float(np.float32(1e-35))
_LIBM_EXP = np.frompyfunc(math.exp, 1, 1)
# objectives whose prediction is the raw score (unless `sqrt`, which squares it back)
_LGB_IDENTITY_OBJECTIVES = frozenset(
    {"regression", "regression_l2", "regression_l1", "huber", "fair", "quantile"}
)


def _lgbm_trees(model_text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Header and per-tree `key=value` fields of a LightGBM model text."""
    head, sep, rest = model_text.partition("\nTree=")
    if not sep:
        raise ValueError("LightGBM model text has no trees")
    header = {k: v for k, _, v in (line.partition("=") for line in head.splitlines())}
    body = ("Tree=" + rest).split("end of trees", 1)[0]
    trees = [
        dict(line.split("=", 1) for line in block.strip().splitlines() if "=" in line)
        for block in body.split("\n\n")
        if block.strip().startswith("Tree=")
    ]
    return header, trees


def lgbm_tree_ensemble(model_text: str, n_features: int) -> onnx.ModelProto:
    """LightGBM model text as one float64 `TreeEnsemble` (ai.onnx.ml 5) of the raw score.

    Node for node the same trees with LightGBM's double thresholds and leaf values, each
    split sending NaN where LightGBM does (missing type None reads NaN as 0.0, NaN takes
    the default side). The binary objective's sigmoid is not in the graph. Categorical
    splits, linear trees, zero-as-missing and multi-output or averaged (random forest)
    models raise ValueError; the graph input is float64 [n, n_features].
    """
    from onnx import TensorProto, helper, numpy_helper

    header, trees = _lgbm_trees(model_text)
    if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
        raise ValueError("only single-output, summed LightGBM models convert")
    feat, split, missing, kids, leaf_w, roots = [], [], [], [], [], []
    n_nodes = n_leaves = 0
    for tree in trees:
        if tree.get("num_cat", "0") != "0" or tree.get("is_linear", "0") != "0":
            raise ValueError(f"tree {tree['Tree']}: categorical splits or linear leaves")
        values = np.array(tree["leaf_value"].split(), dtype=np.float64)
        roots.append(n_nodes)
        if int(tree["num_leaves"]) == 1:  # a constant tree: one split whose sides both lead to it
            feat.append(np.zeros(1, np.int64))
            split.append(np.zeros(1))
            missing.append(np.zeros(1, np.int64))
            kids.append(np.array([[n_leaves, 1, n_leaves, 1]]))
        else:
            f = np.array(tree["split_feature"].split(), dtype=np.int64)
            thr = np.array(tree["threshold"].split(), dtype=np.float64)
            dt = np.array(tree["decision_type"].split(), dtype=np.int64)
            kind = (dt >> 2) & 3
            if (dt & 1).any() or (kind == 1).any():
                raise ValueError(f"tree {tree['Tree']}: categorical or zero-as-missing split")
            default_left = (dt >> 1) & 1
            feat.append(f)
            split.append(thr)
            missing.append(np.where(kind == 2, default_left, (thr >= 0.0).astype(np.int64)))
            cols = []
            for side in ("left_child", "right_child"):
                c = np.array(tree[side].split(), dtype=np.int64)
                is_leaf = (c < 0).astype(np.int64)
                cols += [np.where(c < 0, n_leaves + ~c, n_nodes + c), is_leaf]
            kids.append(np.column_stack(cols))
        leaf_w.append(values)
        n_nodes += feat[-1].size
        n_leaves += values.size
    feature_ids = np.concatenate(feat)
    if feature_ids.size == 0 or feature_ids.max() >= n_features:
        raise ValueError(f"the trees use features beyond n_features={n_features}")
    k = np.concatenate(kids)
    weights = np.concatenate(leaf_w)
    node = helper.make_node(
        "TreeEnsemble",
        ["input"],
        ["score"],
        domain="ai.onnx.ml",
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE
        n_targets=1,
        tree_roots=roots,
        nodes_featureids=feature_ids.tolist(),
        nodes_splits=numpy_helper.from_array(np.concatenate(split)),
        nodes_modes=numpy_helper.from_array(np.zeros(feature_ids.size, np.uint8)),  # x <= split
        nodes_truenodeids=k[:, 0].tolist(),
        nodes_trueleafs=k[:, 1].tolist(),
        nodes_falsenodeids=k[:, 2].tolist(),
        nodes_falseleafs=k[:, 3].tolist(),
        nodes_missing_value_tracks_true=np.concatenate(missing).tolist(),
        leaf_targetids=[0] * weights.size,
        leaf_weights=numpy_helper.from_array(weights),
    )
    graph = helper.make_graph(
        [node],
        "trademl_lgbm_exact",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["N", n_features])],
        [helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["N", 1])],
    )
    opsets = [helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 5)]
    proto = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    proto.metadata_props.add(key="trademl.objective", value=header.get("objective", ""))
    return proto


class LGBMExactScorer:
    """`Booster.predict` of a LightGBM model text, bit for bit, on onnxruntime (float64).

    Rows are cut into `n_threads` blocks, each scored by a single-threaded run, so every
    row sums its trees in LightGBM's order whatever the thread count (onnxruntime's own
    threads would split the trees instead and change the last bit). Dense inputs with
    |x| <= 1e-35 are read as 0.0, as LightGBM does; the binary objective's sigmoid is
    applied after the sum with the C library's `exp`. Raises ValueError for models
    `lgbm_tree_ensemble` cannot convert.
    """

    def __init__(self, model_text: str, n_features: int, *, n_threads: int = 1) -> None:
        proto = lgbm_tree_ensemble(model_text, n_features)
        objective = next(p.value for p in proto.metadata_props if p.key == "trademl.objective")
        name, *options = objective.split(" ")
        self.sigmoid: float | None = None
        if name == "binary":
            opts = dict(o.split(":", 1) for o in options if ":" in o)
            self.sigmoid = float(opts.get("sigmoid", 1.0))
        elif name not in _LGB_IDENTITY_OBJECTIVES or "sqrt" in options:
            raise ValueError(f"objective {objective!r}: only regression and binary are supported")
        from onnx import numpy_helper

        node = proto.graph.node[0]
        splits = numpy_helper.to_array(
            next(a for a in node.attribute if a.name == "nodes_splits").t
        )
        # a split in [-1e-35, 1e-35) can tell a tiny input from LightGBM's 0.0
        self._snap_zero = bool(((splits >= -_LGB_ZERO) & (splits < _LGB_ZERO)).any())
        self.n_features = n_features
        self.n_threads = max(1, int(n_threads))
        import onnxruntime as ort  # on first scorer: loading the code location never pays for it

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """float64 [n] predictions, equal to LightGBM's `predict` on the same float64 rows."""
        x = np.ascontiguousarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"X must be [n, {self.n_features}], got shape {x.shape}")
        if self._snap_zero:
            x = np.where(np.abs(x) <= _LGB_ZERO, 0.0, x)
        bounds = np.linspace(0, x.shape[0], min(self.n_threads, max(x.shape[0], 1)) + 1)
        cuts = bounds.astype(int)
        blocks = [x[a:b] for a, b in itertools.pairwise(cuts)]
        if len(blocks) == 1:
            parts = [self._run(blocks[0])]
        else:
            with ThreadPoolExecutor(len(blocks)) as pool:
                parts = list(pool.map(self._run, blocks))
        raw = np.concatenate(parts)
        if self.sigmoid is None:
            return raw
        # the C library's exp, as LightGBM calls it (numpy's SIMD exp can differ in the last bit)
        expo = _LIBM_EXP(-self.sigmoid * raw).astype(np.float64)
        return 1.0 / (1.0 + expo)

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {"input": x})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)
