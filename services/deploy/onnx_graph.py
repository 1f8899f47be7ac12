"""Building the ONNX graph of a fitted pipeline so that it answers as scikit-learn does.

skl2onnx runs a whole pipeline in float32, and a tree compares a feature with its threshold:
a scaled value that float32 rounds across a threshold flips the branch (seen on real data:
probabilities off by 0.02). So the feature transformer runs in float64 (its numeric imputers
rewritten as standard IsNaN/Where ops, which onnxruntime runs in double), and only its output
is cast to float32 for the estimator, as scikit-learn's trees themselves do.

The rewritten imputers fill with the fitted float64 medians, not the float32 copies skl2onnx
keeps: on data with gaps many of a histogram booster's thresholds are exactly the scaled median,
so a fill one float32 rounding away sent every imputed row down the other branch.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from onnx import ModelProto, TensorProto, compose, helper, numpy_helper
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from shared.runtime import MISSING_TEXT

OPSETS = {"": 18, "ai.onnx.ml": 3}
FEATURES = "cauce_features"


def _as_text(values: Any) -> np.ndarray:
    """Fitted categories or fill values with booleans spelled "True"/"False", as they are fed."""
    return np.array(
        [str(bool(v)) if isinstance(v, bool | np.bool_) else v for v in values], dtype=object
    )


def onnx_ready(model: Any) -> Any:
    """A copy whose text imputers treat MISSING_TEXT as missing (ONNX cannot impute NaN text),
    and whose boolean categories are text: a boolean column goes in as "True"/"False" strings."""
    ready = copy.deepcopy(model)
    stack = [ready]
    while stack:
        node = stack.pop()
        if isinstance(node, SimpleImputer) and node.statistics_.dtype in (object, bool):
            node.statistics_ = _as_text(node.statistics_)
            node.missing_values = MISSING_TEXT
        if isinstance(node, OneHotEncoder | OrdinalEncoder):
            node.categories_ = [_as_text(categories) for categories in node.categories_]
        stack.extend(step for _, step in getattr(node, "steps", []))
        stack.extend(
            step for _, step, _ in getattr(node, "transformers_", []) if not isinstance(step, str)
        )
    return ready


def _inputs(signature: list[dict[str, str]]) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    text = {"string", "boolean"}  # booleans as "True"/"False" (onnx_ready, shared.runtime)
    return [
        (
            s["name"],
            StringTensorType([None, 1]) if s["type"] in text else DoubleTensorType([None, 1]),
        )
        for s in signature
    ]


def _numeric_fills(transformer: Any) -> list[np.ndarray]:
    """The float64 fill values of the numeric imputers, in the order skl2onnx converts them."""
    if isinstance(transformer, SimpleImputer):
        numeric = transformer.statistics_.dtype.kind == "f"
        return [transformer.statistics_.astype(np.float64)] if numeric else []
    steps = [step for _, step in getattr(transformer, "steps", [])]
    columns = [step for _, step, _ in getattr(transformer, "transformers_", [])]
    children = [*steps, *(step for step in columns if not isinstance(step, str))]
    return [fill for child in children for fill in _numeric_fills(child)]


def _double_imputers(graph: Any, fills: list[np.ndarray]) -> None:
    """Replace ai.onnx.ml Imputer nodes (float32 only in onnxruntime) by IsNaN and Where that
    fill with the imputers' own float64 values."""
    nodes, pending = [], list(fills)
    for node in graph.node:
        if node.op_type != "Imputer":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rounded = np.array(attrs["imputed_value_floats"], dtype=np.float32)
        exact = pending.pop(0) if pending else None
        if exact is None or not np.array_equal(exact.astype(np.float32), rounded, equal_nan=True):
            raise ValueError("an ONNX imputer does not match the pipeline's numeric imputers")
        fill = exact.reshape(1, -1)
        value, mask = f"{node.output[0]}_fill", f"{node.output[0]}_nan"
        nodes += [
            helper.make_node("Constant", [], [value], value=numpy_helper.from_array(fill)),
            helper.make_node("IsNaN", [node.input[0]], [mask]),
            helper.make_node("Where", [mask, value, node.input[0]], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


def _with_opsets(model: ModelProto) -> ModelProto:
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(domain, v) for domain, v in OPSETS.items())
    return model


def _transformer(transformer: Any, signature: list[dict[str, str]]) -> ModelProto:
    from skl2onnx import convert_sklearn

    graph = convert_sklearn(transformer, initial_types=_inputs(signature), target_opset=OPSETS)
    _double_imputers(graph.graph, _numeric_fills(transformer))
    output = graph.graph.output.pop()
    graph.graph.node.append(
        helper.make_node("Cast", [output.name], [FEATURES], to=TensorProto.FLOAT)
    )
    graph.graph.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, None))
    return _with_opsets(graph)


def _estimator(estimator: Any, *, classify: bool) -> ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if classify else None
    width = int(estimator.n_features_in_)
    graph = convert_sklearn(
        estimator,
        initial_types=[("features", FloatTensorType([None, width]))],
        options=options,
        target_opset=OPSETS,
    )
    return compose.add_prefix(_with_opsets(graph), "estimator_")


def to_onnx(model: Any, signature: list[dict[str, str]], *, classify: bool) -> bytes:
    """The pipeline (features transformer, then estimator) as one ONNX graph, one [rows, 1]
    input per signature column; ValueError for any other shape of model."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise ValueError("only a two-step pipeline (features, estimator) is exported to ONNX")
    ready = onnx_ready(model)
    merged = compose.merge_models(
        _transformer(ready[0], signature),
        _estimator(ready[-1], classify=classify),
        io_map=[(FEATURES, "estimator_features")],
    )
    return bytes(merged.SerializeToString())
