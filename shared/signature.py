"""A model's input signature (MLflow ColSpec type names) and the check that requests match it."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from shared.columns import TYPES
from shared.errors import RequestError

__all__ = ["TYPES", "cast_column", "coerce_frame", "column_type", "input_signature"]


def column_type(column: pd.Series) -> str:
    """The MLflow column type (double, long, string, boolean) of a column."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_numeric_dtype(dtype):
        return "double"
    present = column.dropna()
    # A boolean column with gaps arrives as object; it is still a boolean column.
    if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
        return "boolean"
    return "string"


def input_signature(X: pd.DataFrame) -> list[dict[str, str]]:
    """Describe each feature column as {"name", "type"} with an MLflow ColSpec type name."""
    return [{"name": str(name), "type": column_type(X[name])} for name in X.columns]


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _wrong(name: str, row: int, value: Any, expected: str) -> RequestError:
    return RequestError(
        f"column {name!r} expects {expected}, but row {row} has {value!r}; "
        f"send {expected} or null for missing values",
        field=name,
    )


def _to_double(name: str, values: list[Any]) -> pd.Series:
    out: list[float] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            out.append(math.nan)
        elif _is_number(value) or (isinstance(value, str) and _parses_as_float(value)):
            out.append(float(value))
        else:
            raise _wrong(name, row, value, "a number")
    return pd.Series(out, dtype="float64")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _parses_as_float(text: str) -> bool:
    try:
        return not math.isinf(float(text))
    except ValueError:
        return False


def _to_long(name: str, values: list[Any]) -> pd.Series:
    doubles = _to_double(name, values)
    for row, value in enumerate(doubles):
        if not math.isnan(value) and not value.is_integer():
            raise _wrong(name, row, values[row], "an integer")
    # A gap forces float, which the imputer handles; without gaps keep the training dtype.
    return doubles if doubles.isna().any() else doubles.astype("int64")


def _to_boolean(name: str, values: list[Any]) -> pd.Series:
    words = {"true": True, "false": False}
    out: list[Any] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            out.append(np.nan)
        elif isinstance(value, bool | np.bool_):
            out.append(bool(value))
        elif isinstance(value, str) and value.strip().lower() in words:
            out.append(words[value.strip().lower()])
        else:
            raise _wrong(name, row, value, "true or false")
    has_gap = any(v is np.nan for v in out)
    return pd.Series(out, dtype=object if has_gap else bool)


def _to_string(name: str, values: list[Any]) -> pd.Series:
    out: list[Any] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            out.append(np.nan)
        elif isinstance(value, str):
            out.append(value)
        elif _is_number(value):
            # A category such as a size "3" may arrive as a JSON number; match the CSV text.
            number = float(value)
            out.append(str(int(number)) if number.is_integer() else str(value))
        else:
            raise _wrong(name, row, value, "text")
    return pd.Series(out, dtype="str")


_CASTS = {"double": _to_double, "long": _to_long, "boolean": _to_boolean, "string": _to_string}


def cast_column(kind: str, name: str, values: list[Any]) -> pd.Series:
    """One column's values cast to a signature type, RequestError naming the first bad value."""
    if kind not in _CASTS:
        raise ValueError(f"signature type {kind!r} for {name!r} is not one of {TYPES}")
    return _CASTS[kind](name, values)


def coerce_frame(frame: pd.DataFrame, signature: list[dict[str, str]]) -> pd.DataFrame:
    """Cast `frame` to the signature's columns and types, raising RequestError naming the field."""
    expected = [spec["name"] for spec in signature]
    listed = ", ".join(expected)
    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise RequestError(f"column {repeated[0]!r} appears twice", field=str(repeated[0]))
    for name in expected:
        if name not in frame.columns:
            raise RequestError(f"missing column {name!r}; the model expects: {listed}", field=name)
    for name in frame.columns:
        if name not in expected:
            raise RequestError(
                f"unknown column {name!r}; the model expects only: {listed}", field=str(name)
            )
    columns = {}
    for spec in signature:
        name, kind = spec["name"], spec["type"]
        if kind not in _CASTS:
            raise ValueError(f"signature type {kind!r} for {name!r} is not one of {TYPES}")
        columns[name] = _CASTS[kind](name, frame[name].tolist())
    return pd.DataFrame(columns)
