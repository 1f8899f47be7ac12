"""Building the ONNX graph of a fitted pipeline so that it answers as scikit-learn does.

skl2onnx runs a whole pipeline in float32, and a tree compares a feature with its threshold:
a scaled value that float32 rounds across a threshold flips the branch (seen on real data:
probabilities off by 0.02). So the feature transformer runs in float64 (its numeric imputers
rewritten as standard IsNaN/Where ops, which onnxruntime runs in double). Each estimator then
gets the features as scikit-learn gives them: float32 for the forests (scikit-learn casts, and
skl2onnx moves their thresholds to match), float64 for histogram boosting and LightGBM, which
compare doubles with double thresholds (in float32 a boosting model on diabetes missed by 7 on one
row). LightGBM's converter comes from onnxmltools, made to keep the thresholds in float64. A blend
is built member by member, so that each member gets its own precision, and averaged with its
weights as scikit-learn's voting models do.

The rewritten imputers fill with the fitted float64 medians, not the float32 copies skl2onnx
keeps: on data with gaps many of a histogram booster's thresholds are exactly the scaled median,
so a fill one float32 rounding away sent every imputed row down the other branch.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from onnx import ModelProto, TensorProto, compose, helper, numpy_helper
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from shared.dates import DateParts
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


def _after_dates(
    transformer: Any, signature: list[dict[str, str]]
) -> tuple[Any, list[dict[str, str]]]:
    """What of the features transformer goes in the graph, and its inputs: DateParts in front
    stays out (serving expands the dates, shared.runtime.onnx_feeds), its parts are inputs."""
    steps = [step for _, step in getattr(transformer, "steps", [])]
    if not any(isinstance(step, DateParts) for step in steps):
        return transformer, signature
    if len(steps) != 2 or not isinstance(steps[0], DateParts):
        raise ValueError("dates are exported to ONNX only when DateParts is the first step")
    kinds = {s["name"]: s["type"] for s in signature}
    names = [str(name) for name in steps[1].feature_names_in_]
    return steps[1], [{"name": n, "type": kinds.get(n, "double")} for n in names]


def _transformer(transformer: Any, signature: list[dict[str, str]]) -> ModelProto:
    """The features transformer with one float64 output, FEATURES."""
    from skl2onnx import convert_sklearn

    transformer, signature = _after_dates(transformer, signature)
    graph = convert_sklearn(transformer, initial_types=_inputs(signature), target_opset=OPSETS)
    _double_imputers(graph.graph, _numeric_fills(transformer))
    output = graph.graph.output.pop()
    graph.graph.node.append(helper.make_node("Identity", [output.name], [FEATURES]))
    graph.graph.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.DOUBLE, None))
    return _with_opsets(graph)


def _boosting(estimator: Any) -> bool:
    return _lightgbm(estimator) or isinstance(
        estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor
    )


def _lightgbm(estimator: Any) -> bool:
    """Whether `estimator` is LightGBM's (told by its module: lightgbm is imported only then)."""
    return type(estimator).__module__.startswith("lightgbm.")


class _DoubleThresholds:
    """The converter's container, but tree nodes keep LightGBM's float64 thresholds
    (`nodes_values_as_tensor`, ai.onnx.ml 3) where onnxmltools would round them to float32: with
    float32 thresholds a split between two values float32 cannot tell apart sends both one way."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, **attrs: Any) -> Any:
        if op_type.startswith("TreeEnsemble") and "nodes_values" in attrs:
            exact = np.asarray(attrs.pop("nodes_values"), dtype=np.float64)
            attrs["nodes_values_as_tensor"] = numpy_helper.from_array(exact)
            attrs["op_version"] = 3
        return self._container.add_node(op_type, inputs, outputs, **attrs)


def _register_lightgbm() -> None:
    """Teach skl2onnx LightGBM's estimators through onnxmltools' converter, with the exact
    thresholds (idempotent)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    def convert(scope: Any, operator: Any, container: Any) -> None:
        convert_lightgbm(scope, operator, _DoubleThresholds(container))

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert
    )


def _float_outputs(graph: Any) -> None:
    """Declare a tree ensemble's outputs float32, as onnxruntime's tree ensembles give them."""
    for output in graph.output:
        if output.type.tensor_type.elem_type == TensorProto.DOUBLE:
            output.type.tensor_type.elem_type = TensorProto.FLOAT


def _exact_thresholds(graph: Any, estimator: Any) -> None:
    """Give a histogram booster's tree node its float64 thresholds (`nodes_values_as_tensor`,
    ai.onnx.ml 3): skl2onnx keeps them as float32 even for double input. Its outputs are float32,
    as onnxruntime's tree ensembles give them."""
    (node,) = [n for n in graph.node if n.op_type.startswith("TreeEnsemble")]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    # skl2onnx numbers the trees iteration by iteration, a class's tree within, and the nodes
    # as the booster's own node arrays.
    trees = [tree for iteration in estimator._predictors for tree in iteration]
    starts = np.cumsum([0] + [len(tree.nodes) for tree in trees])
    thresholds = np.concatenate([tree.nodes["num_threshold"] for tree in trees])
    where = starts[np.asarray(attrs["nodes_treeids"])] + np.asarray(attrs["nodes_nodeids"])
    leaf = np.array([mode == b"LEAF" for mode in attrs["nodes_modes"]])
    exact = np.where(leaf, 0.0, thresholds[where]).astype(np.float64)
    rounded = np.array(attrs["nodes_values"], dtype=np.float32)
    if not np.array_equal(exact.astype(np.float32), rounded):
        raise ValueError("the ONNX tree nodes do not match the booster's thresholds")
    kept = [a for a in node.attribute if a.name != "nodes_values"]
    del node.attribute[:]
    node.attribute.extend(kept)
    node.attribute.append(
        helper.make_attribute("nodes_values_as_tensor", numpy_helper.from_array(exact))
    )
    _float_outputs(graph)


def _member(estimator: Any, *, classify: bool) -> ModelProto:
    """One estimator's graph: input `features` (float64; cast to float32 inside unless the
    estimator is a histogram booster), outputs (label, probabilities) or (variable)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    options = {id(estimator): {"zipmap": False}} if classify else None
    width = int(estimator.n_features_in_)
    double = _boosting(estimator)
    if _lightgbm(estimator):
        _register_lightgbm()
    kind = DoubleTensorType if double else FloatTensorType
    graph = convert_sklearn(
        estimator,
        initial_types=[("features_in", kind([None, width]))],
        options=options,
        target_opset=OPSETS,
    )
    if _lightgbm(estimator):
        _float_outputs(graph.graph)  # its thresholds are exact already (_DoubleThresholds)
    elif double:
        _exact_thresholds(graph.graph, estimator)
    precision = TensorProto.DOUBLE if double else TensorProto.FLOAT
    cast = helper.make_node("Cast", ["features"], ["features_in"], to=precision)
    graph.graph.node.insert(0, cast)
    del graph.graph.input[:]
    graph.graph.input.append(
        helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, width])
    )
    return _with_opsets(graph)


def _constant(name: str, value: np.ndarray) -> Any:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value))


def _labels(classes: Any) -> np.ndarray:
    """The classes as an ONNX tensor can hold them: integers, floats, else their text."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "iu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        return classes.astype(np.float64)
    return np.array([str(c) for c in classes], dtype=object)


def _blend(voting: Any, *, classify: bool) -> ModelProto:
    """A soft-voting model as its members' graphs side by side, their probabilities (or values)
    averaged with the voting weights, and for a classifier the class of the largest average."""
    weights = np.ones(len(voting.estimators_)) if voting.weights is None else voting.weights
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    width = int(voting.n_features_in_)
    nodes, initializers, weighted, ir_version = [], [], [], 0
    for i, (estimator, weight) in enumerate(zip(voting.estimators_, weights, strict=True)):
        member = compose.add_prefix(_member(estimator, classify=classify), f"m{i}_")
        ir_version = member.ir_version
        nodes.append(helper.make_node("Identity", ["features"], [f"m{i}_features"]))
        nodes.extend(member.graph.node)
        initializers.extend(member.graph.initializer)
        scores = member.graph.output[-1].name  # probabilities, or the regressor's variable
        nodes.append(_constant(f"w{i}", np.array([weight], dtype=np.float32)))
        nodes.append(helper.make_node("Mul", [scores, f"w{i}"], [f"weighted{i}"]))
        weighted.append(f"weighted{i}")
    total = "probabilities" if classify else "variable"
    nodes.append(helper.make_node("Sum", weighted, [total]))
    columns = len(voting.classes_) if classify else 1
    outputs = [helper.make_tensor_value_info(total, TensorProto.FLOAT, [None, columns])]
    if classify:
        classes = _labels(voting.classes_)
        nodes.append(_constant("classes", classes))
        nodes.append(helper.make_node("ArgMax", [total], ["best"], axis=1, keepdims=0))
        nodes.append(helper.make_node("Gather", ["classes", "best"], ["label"], axis=0))
        kind = helper.np_dtype_to_tensor_dtype(classes.dtype)
        outputs.insert(0, helper.make_tensor_value_info("label", kind, [None]))
    graph = helper.make_graph(
        nodes,
        "blend",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, width])],
        outputs,
        initializers,
    )
    return _with_opsets(helper.make_model(graph, ir_version=ir_version))


def _estimator(estimator: Any, *, classify: bool) -> ModelProto:
    if isinstance(estimator, VotingClassifier | VotingRegressor):
        graph = _blend(estimator, classify=classify)
    else:
        graph = _member(estimator, classify=classify)
    return compose.add_prefix(graph, "estimator_")


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
