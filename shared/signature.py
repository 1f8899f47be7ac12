"""A model's input signature as training writes it: each feature column's MLflow ColSpec type
(shared.columns.TYPES). Requests are checked against it by shared.columns, which needs no pandas."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


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


def input_signature(
    X: pd.DataFrame, *, dates: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """Describe each feature column as {"name", "type"} with an MLflow ColSpec type name; a date
    column (in `dates`, name -> form) is text in its form: {"type": "string", "format": ...}."""
    dates = dates or {}
    return [
        {"name": str(name), "type": "string", "format": dates[str(name)]}
        if str(name) in dates
        else {"name": str(name), "type": column_type(X[name])}
        for name in X.columns
    ]
