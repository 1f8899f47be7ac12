"""Pure scoring: MLflow-style request bodies to columns, and the answer as JSON-ready values."""

from __future__ import annotations

import csv
import io
import math
import zlib
from typing import Any

import numpy as np
import orjson

from shared.columns import Columns, shown, unknown_column
from shared.errors import RequestError
from shared.runtime import Scored

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# The most rows one request may hold (413 above); columns are the model's, each at most once.
MAX_ROWS = 100_000


def decode_body(body: bytes, encoding: str, *, max_bytes: int) -> bytes:
    """The body with its Content-Encoding undone: gzip inflated to at most `max_bytes` (413
    beyond), identity as it is; any other encoding gets a 415 naming the header."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise RequestError(
            f"Content-Encoding {shown(encoding)!r} is not supported; send the body as it is "
            "or gzip-compressed",
            field="Content-Encoding",
            status=415,
        )
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        plain = inflater.decompress(body, max_bytes + 1)  # max_length: a bomb stops here
    except zlib.error as exc:
        raise RequestError(
            f"the request body is not the gzip its Content-Encoding says ({exc})",
            field="Content-Encoding",
        ) from exc
    if len(plain) > max_bytes:
        raise RequestError(
            f"the request body is larger than {max_bytes} bytes once decompressed",
            field="body",
            status=413,
        )
    if not inflater.eof:
        raise RequestError("the gzip request body ends early", field="Content-Encoding")
    return plain


def decode_json(body: bytes) -> Any:
    """The request body parsed as JSON; RequestError naming the body when it is not."""
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}", field="body") from exc


def read_csv(body: bytes, columns: list[str], ignored: frozenset[str] = frozenset()) -> Columns:
    """A text/csv body (header row first) as columns of text; empty cells are missing."""
    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        header, *rows = list(reader)
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise RequestError(f"the request body is not valid CSV: {exc}", field="body") from exc
    rows = [row for row in rows if row]
    names = _checked_names(header, columns, ignored)
    return _rows([[cell if cell != "" else None for cell in row] for row in rows], names, "body")


def parse_mlflow(
    payload: Any, columns: list[str], ignored: frozenset[str] = frozenset()
) -> Columns:
    """The rows of an MLflow scoring request (or a plain list of records) as columns.

    Every step is linear in the body: a column the model does not take is refused as soon as
    it is seen (the `ignored` ones, the target, are let through for the signature to drop), and
    more than MAX_ROWS rows get a 413 before any column is built.
    """
    if isinstance(payload, list):
        return _records(payload, "body", columns, ignored)
    if not isinstance(payload, dict):
        raise RequestError(
            "the request body must be a JSON object or a list of records", field="body"
        )
    present = [key for key in MLFLOW_KEYS if key in payload]
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else f"found keys {_keys(payload)}"
        raise RequestError(
            f"send exactly one of {', '.join(MLFLOW_KEYS)}; {found}",
            field=present[-1] if present else "body",
        )
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(value, columns, ignored)
    if key == "dataframe_records":
        return _records(value, key, columns, ignored)
    return _tensor_like(value, key, columns, ignored)


def check_rows(count: int, field: str) -> None:
    """Refuse (413) a request of more than MAX_ROWS rows, naming where they are."""
    if count > MAX_ROWS:
        raise RequestError(
            f"{field} has {count} rows; a request may hold at most {MAX_ROWS:,} "
            "(send more in several requests, or use batch prediction)",
            field=field,
            status=413,
        )


def _keys(payload: dict[str, Any]) -> str:
    """The first few keys of an object, cut, for a message."""
    names = [shown(str(key)) for key in list(payload)[:10]]
    return ", ".join(names) + (", ..." if len(payload) > 10 else "")


def _checked_names(
    names: list[Any], columns: list[str], ignored: frozenset[str] = frozenset()
) -> list[str]:
    """Column names that the model takes (or ignores), each once; refused at the first that is
    neither."""
    known = set(columns) | ignored
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise RequestError(f"column {shown(name)!r} appears twice", field=shown(name))
        if name not in known:
            raise unknown_column(name, columns)
        seen.add(name)
    return names


def _split(value: Any, columns: list[str], ignored: frozenset[str]) -> Columns:
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
    if names is not columns:
        _checked_names(names, columns, ignored)
    return _rows(value["data"], names, "dataframe_split.data")


def _records(
    value: Any, field: str, columns: list[str], ignored: frozenset[str] = frozenset()
) -> Columns:
    if not isinstance(value, list) or not value:
        raise RequestError(f"{field} must be a non-empty list of records", field=field)
    check_rows(len(value), field)
    known = set(columns) | ignored
    seen: set[str] = set()
    for row, record in enumerate(value):
        if not isinstance(record, dict):
            raise RequestError(
                f"{field}[{row}] must be an object of column: value", field=f"{field}[{row}]"
            )
        if not record.keys() <= known:
            raise unknown_column(next(k for k in record if k not in known), columns)
        if len(seen) < len(known):
            seen.update(record)
    # Only the model's columns, so building them costs rows x the model's width at most.
    return {name: [record.get(name) for record in value] for name in columns if name in seen}


def _rows(data: Any, names: list[str], field: str) -> Columns:
    if not isinstance(data, list) or not data:
        raise RequestError(f"{field} must be a non-empty list of rows", field=field)
    check_rows(len(data), field)
    width = len(names)
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != width:
            raise RequestError(
                f"{field}[{row}] must be a list of {width} values, one per column "
                f"({', '.join(names)})",
                field=f"{field}[{row}]",
            )
    return dict(zip(names, map(list, zip(*data, strict=True)), strict=True))


def _tensor_like(value: Any, field: str, columns: list[str], ignored: frozenset[str]) -> Columns:
    """`instances` / `inputs`: records, rows in signature order, or a dict of columns."""
    if isinstance(value, dict):
        _checked_names(list(value), columns, ignored)
        return columns_of(value, field)
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return _records(value, field, columns, ignored)
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return _rows(value, columns, field)
    if isinstance(value, list) and value and len(columns) == 1:
        check_rows(len(value), field)
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
            f"got { ({shown(n): len(v) for n, v in lists.items()}) }",
            field=field,
        )
    check_rows(lengths.pop(), field)
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
