"""Pure Open Inference Protocol v2 (KServe) request parsing and response building."""

from __future__ import annotations

import math
from typing import Any

from services.serve.predict import check_rows, columns_of
from shared.columns import Columns, shown, unknown_column
from shared.errors import RequestError

# fmt: off
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES")
# Version-record fields that model metadata passes on, beyond what OIP itself defines.
RECORD_FIELDS = ("task", "target", "classes", "estimator", "params", "metric", "metrics",
                 "run_id", "created", "lineage")
# fmt: on
SIGNATURE_TO_V2 = {"double": "FP64", "long": "INT64", "string": "BYTES", "boolean": "BOOL"}
# Tensor data nested deeper than this is refused (400) rather than walked: a column is [rows] or
# [rows, 1] and a table [rows, columns], so anything deeper is a mistake or an attack.
MAX_DEPTH = 32


def parse_infer(payload: Any, columns: list[str]) -> Columns:
    """The rows of an OIP v2 infer request: one tensor per column, or one 2-D tensor in order."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise RequestError(
            "an infer request is an object with an 'inputs' list of tensors", field="inputs"
        )
    tensors = payload["inputs"]
    if not tensors:
        raise RequestError("inputs is empty; send one tensor per column", field="inputs")
    parsed = [_tensor(tensor, index) for index, tensor in enumerate(tensors)]
    name, shape, data = parsed[0]
    if len(parsed) == 1 and len(shape) == 2 and name not in columns:
        return _matrix(shape, data, columns)
    return _columns(parsed, columns)


def request_id(payload: dict[str, Any]) -> str | None:
    """The request's `id`, which OIP makes a string; None when the request has none."""
    value = payload.get("id")
    if value is None or isinstance(value, str):
        return value or None
    raise RequestError(f"id must be a string, not {shown(value)}", field="id")


def _tensor(tensor: Any, index: int) -> tuple[str, list[int], list[Any]]:
    """Check one input tensor and return its name, shape and flattened data."""
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise RequestError(
            f"{where} must be an object with name, shape, datatype, data", field=where
        )
    name, shape = tensor.get("name"), tensor.get("shape")
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name must be a column name", field=f"{where}.name")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise RequestError(
            f"{where}.shape must be a list of non-negative integers", field=f"{where}.shape"
        )
    data = _data(tensor, where)
    if len(data) != math.prod(shape):
        raise RequestError(
            f"{where} ({shown(name)}) has shape {shape}, which needs {math.prod(shape)} "
            f"values, but data holds {len(data)}",
            field=f"{where}.shape",
        )
    return name, shape, data


def _data(tensor: dict[str, Any], where: str) -> list[Any]:
    """The tensor's data, flattened, once its datatype is a known OIP one."""
    if tensor.get("datatype") not in DATATYPES:
        raise RequestError(
            f"{where}.datatype must be one of {', '.join(DATATYPES)}; "
            f"got {tensor.get('datatype')!r}",
            field=f"{where}.datatype",
        )
    if not isinstance(tensor.get("data"), list):
        raise RequestError(f"{where}.data must be a list", field=f"{where}.data")
    return _flatten(tensor["data"], f"{where}.data")


def _flatten(data: list[Any], field: str) -> list[Any]:
    """Row-major flattening of nested lists (OIP accepts flat or nested data), without recursion
    and refusing nesting deeper than MAX_DEPTH."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) >= MAX_DEPTH:
                    raise RequestError(
                        f"{field} is nested more than {MAX_DEPTH} lists deep; send a flat list "
                        "or one nested as the tensor's shape",
                        field=field,
                    )
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _matrix(shape: list[int], data: list[Any], columns: list[str]) -> Columns:
    rows, width = shape
    if width != len(columns):
        raise RequestError(
            f"inputs[0] has shape {shape}; a single 2-D tensor must be [rows, {len(columns)}] "
            f"with columns in this order: {', '.join(columns)}",
            field="inputs[0].shape",
        )
    if rows == 0:
        raise RequestError("inputs[0] has no rows", field="inputs[0].shape")
    check_rows(rows, "inputs[0].shape")
    return {name: data[index::width] for index, name in enumerate(columns)}


def _columns(parsed: list[tuple[str, list[int], list[Any]]], columns: list[str]) -> Columns:
    known = set(columns)
    for index, (name, shape, _) in enumerate(parsed):
        if name not in known:
            raise unknown_column(name, columns)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(
                f"inputs[{index}] ({shown(name)}) has shape {shape}; a column tensor "
                "must be [rows] or [rows, 1]",
                field=f"inputs[{index}].shape",
            )
    rows = {shape[0] for _, shape, _ in parsed}
    if len(rows) != 1:
        counts = {name: shape[0] for name, shape, _ in parsed}
        raise RequestError(
            f"every input tensor needs the same number of rows; got {counts}", field="inputs"
        )
    return columns_of({name: data for name, _, data in parsed}, "inputs")


def datatype(values: list[Any]) -> str:
    """The OIP datatype of a list of plain Python values."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


def infer_response(
    answer: dict[str, Any], *, classes: list[str], name: str, version: int, request_id: str
) -> dict[str, Any]:
    """The OIP v2 infer response: `predict`, and `predict_proba` ([rows, classes], row-major)."""
    predictions = answer["predictions"]
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "shape": [len(predictions)],
            "datatype": datatype(predictions),
            "data": predictions,
        }
    ]
    if "probabilities" in answer:
        flat = [row[label] for row in answer["probabilities"] for label in classes]
        outputs.append(
            {
                "name": "predict_proba",
                "shape": [len(predictions), len(classes)],
                "datatype": "FP64",
                "data": flat,
                "parameters": {"classes": classes},
            }
        )
    return {"model_name": name, "model_version": str(version), "id": request_id, "outputs": outputs}


def model_metadata(record: dict[str, Any], signature: list[dict[str, str]]) -> dict[str, Any]:
    """OIP model metadata from a version record, plus its task, target, classes and metrics."""
    classes = record.get("classes")
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": _predict_type(record), "shape": [-1]}
    ]
    if record.get("task") == "classification":
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes or [])]}
        )
    inputs = [
        {
            "name": spec["name"],
            "datatype": SIGNATURE_TO_V2.get(spec["type"], "BYTES"),
            "shape": [-1],
            "parameters": {"type": spec["type"]},
        }
        for spec in signature
    ]
    return {
        "name": record["pipeline"],
        "versions": [str(record["version"])],
        "platform": "sklearn",
        "inputs": inputs,
        "outputs": outputs,
        **{key: record.get(key) for key in RECORD_FIELDS},
    }


def _predict_type(record: dict[str, Any]) -> str:
    if record.get("task") == "regression":
        return "FP64"
    return datatype(list(record.get("classes") or []))
