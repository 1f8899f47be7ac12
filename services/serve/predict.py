"""Pure scoring: MLflow-style request bodies to columns, and the answer as JSON-ready values."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson

from shared.columns import Columns
from shared.errors import RequestError
from shared.runtime import Scored

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_json(body: bytes) -> Any:
    """The request body parsed as JSON; RequestError naming the body when it is not."""
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}", field="body") from exc


def read_csv(body: bytes) -> Columns:
    """A text/csv body (header row first) as columns of text; empty cells are missing."""
    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        header, *rows = list(reader)
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise RequestError(f"the request body is not valid CSV: {exc}", field="body") from exc
    rows = [row for row in rows if row]
    table = _rows([[cell if cell != "" else None for cell in row] for row in rows], header, "body")
    return table


def parse_mlflow(payload: Any, columns: list[str]) -> Columns:
    """The rows of an MLflow scoring request (or a plain list of records) as columns."""
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


def _split(value: Any, columns: list[str]) -> Columns:
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


def _records(value: Any, field: str) -> Columns:
    if not isinstance(value, list) or not value:
        raise RequestError(f"{field} must be a non-empty list of records", field=field)
    for row, record in enumerate(value):
        if not isinstance(record, dict):
            raise RequestError(
                f"{field}[{row}] must be an object of column: value", field=f"{field}[{row}]"
            )
    names = list(dict.fromkeys(name for record in value for name in record))
    return {name: [record.get(name) for record in value] for name in names}


def _rows(data: Any, names: list[str], field: str) -> Columns:
    if not isinstance(data, list) or not data:
        raise RequestError(f"{field} must be a non-empty list of rows", field=field)
    width = len(names)
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != width:
            raise RequestError(
                f"{field}[{row}] must be a list of {width} values, one per column "
                f"({', '.join(names)})",
                field=f"{field}[{row}]",
            )
    if len(set(names)) != width:
        repeated = next(name for name in names if names.count(name) > 1)
        raise RequestError(f"column {repeated!r} appears twice", field=repeated)
    return dict(zip(names, map(list, zip(*data, strict=True)), strict=True))


def _tensor_like(value: Any, field: str, columns: list[str]) -> Columns:
    """`instances` / `inputs`: records, rows in signature order, or a dict of columns."""
    if isinstance(value, dict):
        return columns_of(value, field)
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return _records(value, field)
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return _rows(value, columns, field)
    if isinstance(value, list) and value and len(columns) == 1:
        return {columns[0]: value}
    raise RequestError(
        f"{field} must be a list of records, a list of rows in column order "
        f"({', '.join(columns)}), or an object of column: values",
        field=field,
    )


def columns_of(value: dict[str, Any], field: str) -> Columns:
    """A dict of column -> list of values (or one value each, for one row), checked for shape."""
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
    return lists


def answer(scored: Scored, labels: list[str]) -> dict[str, Any]:
    """Predictions, and for classifiers a {class: probability} dict per row."""
    out: dict[str, Any] = {"predictions": plain(scored.predictions)}
    if scored.probabilities is not None:
        rows = scored.probabilities.tolist()
        out["probabilities"] = [dict(zip(labels, row, strict=True)) for row in rows]
    return out


def plain(values: np.ndarray) -> list[Any]:
    """A numpy array as JSON-ready Python values (NaN becomes null)."""
    out = values.tolist()
    if values.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in out]
    return list(out)
