"""Pure scoring: MLflow-style request bodies to a checked frame, and the answer as JSON."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import RequestError
from shared.signature import coerce_frame

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_json(body: bytes) -> Any:
    """The request body parsed as JSON; RequestError naming the body when it is not."""
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object", field="body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}", field="body") from exc


def read_csv(body: bytes) -> pd.DataFrame:
    """A text/csv body (header row first) as a frame of strings, checked later by the signature."""
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the request body is not valid CSV: {exc}", field="body") from exc
    return frame.astype(object).where(frame.notna(), None)


def parse_mlflow(payload: Any, columns: list[str]) -> pd.DataFrame:
    """The rows of an MLflow scoring request (or a plain list of records) as a raw frame."""
    if isinstance(payload, list):
        return _records(payload, "body")
    if not isinstance(payload, dict):
        raise RequestError(
            "the request body must be a JSON object or a list of records", field="body"
        )
    present = [key for key in MLFLOW_KEYS if key in payload]
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else f"found keys {sorted(payload)}"
        raise RequestError(
            f"send exactly one of {', '.join(MLFLOW_KEYS)}; {found}",
            field=present[-1] if present else "body",
        )
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(value, columns)
    if key == "dataframe_records":
        return _records(value, key)
    return _tensor_like(value, key, columns)


def _split(value: Any, columns: list[str]) -> pd.DataFrame:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise RequestError(
            "dataframe_split must be an object with a 'data' list of rows",
            field="dataframe_split.data",
        )
    names = value.get("columns", columns)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RequestError(
            "dataframe_split.columns must be a list of column names",
            field="dataframe_split.columns",
        )
    return _rows(value["data"], names, "dataframe_split.data")


def _records(value: Any, field: str) -> pd.DataFrame:
    if not isinstance(value, list) or not value:
        raise RequestError(f"{field} must be a non-empty list of records", field=field)
    for row, record in enumerate(value):
        if not isinstance(record, dict):
            raise RequestError(
                f"{field}[{row}] must be an object of column: value", field=f"{field}[{row}]"
            )
    names = list(dict.fromkeys(name for record in value for name in record))
    return pd.DataFrame(
        [[record.get(name) for name in names] for record in value], columns=names, dtype=object
    )


def _rows(data: Any, names: list[str], field: str) -> pd.DataFrame:
    if not isinstance(data, list) or not data:
        raise RequestError(f"{field} must be a non-empty list of rows", field=field)
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(names):
            raise RequestError(
                f"{field}[{row}] must be a list of {len(names)} values, one per column "
                f"({', '.join(names)})",
                field=f"{field}[{row}]",
            )
    return pd.DataFrame(data, columns=names, dtype=object)


def _tensor_like(value: Any, field: str, columns: list[str]) -> pd.DataFrame:
    """`instances` / `inputs`: records, rows in signature order, or a dict of columns."""
    if isinstance(value, dict):
        return columns_frame(value, field)
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return _records(value, field)
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return _rows(value, columns, field)
    if isinstance(value, list) and value and len(columns) == 1:
        return pd.DataFrame({columns[0]: value}, dtype=object)
    raise RequestError(
        f"{field} must be a list of records, a list of rows in column order "
        f"({', '.join(columns)}), or an object of column: values",
        field=field,
    )


def columns_frame(value: dict[str, Any], field: str) -> pd.DataFrame:
    """A dict of column -> list of values (or one value each, for one row) as a frame."""
    if not value:
        raise RequestError(f"{field} has no columns", field=field)
    lists = {name: v if isinstance(v, list) else [v] for name, v in value.items()}
    lengths = {len(v) for v in lists.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise RequestError(
            f"every column in {field} needs the same, non-zero number of values; "
            f"got { ({n: len(v) for n, v in lists.items()}) }",
            field=field,
        )
    return pd.DataFrame(lists, dtype=object)


def check(frame: pd.DataFrame, signature: list[dict[str, str]]) -> pd.DataFrame:
    """Cast the raw frame to the model's signature (RequestError names any bad column)."""
    return coerce_frame(frame, signature)


def predict(estimator: Any, frame: pd.DataFrame, *, task: str) -> dict[str, Any]:
    """Predictions, and for classification a {class: probability} dict per row."""
    try:
        answer: dict[str, Any] = {"predictions": _plain(estimator.predict(frame))}
        if task == "classification" and hasattr(estimator, "predict_proba"):
            proba = np.asarray(estimator.predict_proba(frame), dtype=float)
            labels = [str(label) for label in _plain(class_labels(estimator))]
            answer["probabilities"] = [
                dict(zip(labels, row, strict=True)) for row in proba.tolist()
            ]
            answer["classes"] = labels
    except (ValueError, TypeError, KeyError) as exc:
        raise RequestError(
            f"the model could not score these rows: {exc}", field="inputs", status=422
        ) from exc
    return answer


def class_labels(estimator: Any) -> Any:
    """The order of predict_proba's columns."""
    return getattr(estimator, "classes_", [])


def _plain(values: Any) -> list[Any]:
    """A numpy array as JSON-ready Python values (NaN becomes null)."""
    out = np.asarray(values).tolist()
    return [None if isinstance(v, float) and math.isnan(v) else v for v in out]


def empty_row(signature: list[dict[str, str]]) -> pd.DataFrame:
    """One row with every column missing, used to warm a freshly loaded model."""
    return pd.DataFrame({spec["name"]: [None] for spec in signature}, dtype=object)


def typical_row(signature: list[dict[str, str]]) -> pd.DataFrame:
    """One row of zeros, empty text and false, for models that refuse missing values."""
    blank = {"double": 0.0, "long": 0, "string": "", "boolean": False}
    return pd.DataFrame(
        {spec["name"]: [blank.get(spec["type"])] for spec in signature}, dtype=object
    )
