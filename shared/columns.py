"""An input signature compiled once per model: request columns to typed arrays, cheaply.

The common case (numbers as JSON numbers, text as JSON strings) is one type scan and one numpy
conversion per column; anything else falls back to the value-by-value casts of shared.signature,
so a bad value is still reported with its column and row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import RequestError

if TYPE_CHECKING:
    import pandas as pd

Columns = dict[str, list[Any]]
NUMBERS = frozenset({int, float, type(None)})
TEXT = frozenset({str, type(None)})
FLAGS = frozenset({bool, type(None)})
TYPES = ("double", "long", "string", "boolean")  # MLflow ColSpec type names


def cast_column(kind: str, name: str, values: list[Any]) -> pd.Series:
    """shared.signature's value-by-value cast, which names the first bad value. Imported when a
    column first needs it, and pandas with it: the common request never does."""
    from shared.signature import cast_column as cast

    return cast(kind, name, values)


@dataclass(frozen=True)
class Column:
    """A checked column: float64 for numbers, bool or object for flags, object for text."""

    kind: str
    values: np.ndarray
    missing: np.ndarray | None = None  # for text: where a value was missing


def _numbers(name: str, kind: str, values: list[Any]) -> np.ndarray:
    kinds = set(map(type, values))
    array: np.ndarray | None = None
    if kinds <= NUMBERS:
        array = np.array(values, dtype=np.float64)
    elif kinds == {str}:  # CSV bodies and numbers sent as text
        try:
            array = np.array(values, dtype=np.float64)
        except ValueError:
            array = None
    if array is None or np.isinf(array).any():
        array = cast_column("double", name, values).to_numpy(dtype=np.float64)
    if kind == "long":
        whole = np.isnan(array) | (array == np.floor(array))
        if not whole.all():
            cast_column("long", name, values)  # raises, naming the first row that is not whole
    return array


def _text(name: str, values: list[Any]) -> Column:
    if set(map(type, values)) <= TEXT:
        array = np.array(values, dtype=object)
    else:
        array = np.array(cast_column("string", name, values).tolist(), dtype=object)
    missing = np.array([not isinstance(v, str) for v in array.tolist()], dtype=bool)
    return Column("string", array, missing)


def _flags(name: str, values: list[Any]) -> Column:
    if set(map(type, values)) <= FLAGS and None not in values:
        return Column("boolean", np.array(values, dtype=bool))
    series = cast_column("boolean", name, values)
    return Column("boolean", series.to_numpy(dtype=series.dtype))


@dataclass(frozen=True)
class CompiledSignature:
    """The model's input columns, in order, with their types; check() validates a request."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]

    @classmethod
    def compile(
        cls, signature: list[dict[str, str]] | tuple[dict[str, str], ...]
    ) -> CompiledSignature:
        """Compile the {"name", "type"} list that a version records."""
        for spec in signature:  # an unknown type fails at load, not at the first request
            if spec["type"] not in TYPES:
                raise ValueError(
                    f"signature type {spec['type']!r} for {spec['name']!r} is not one of {TYPES}"
                )
        return cls(tuple(s["name"] for s in signature), tuple(s["type"] for s in signature))

    def check(self, columns: Columns) -> dict[str, Column]:
        """Typed columns in signature order; RequestError naming the column otherwise."""
        if columns.keys() != set(self.names):
            self._explain(columns)
        numbers = self._plain_numbers(columns)
        return {
            name: numbers[name] if name in numbers else self._cast(name, kind, columns[name])
            for name, kind in zip(self.names, self.kinds, strict=True)
        }

    def _plain_numbers(self, columns: Columns) -> dict[str, Column]:
        """The "double" columns that hold only JSON numbers and gaps, converted in one numpy call
        (a request of a few rows pays per call, not per value); {} when any needs a closer look,
        which _cast then gives each column on its own."""
        names = [n for n, k in zip(self.names, self.kinds, strict=True) if k == "double"]
        if len(names) < 2 or not all(set(map(type, columns[n])) <= NUMBERS for n in names):
            return {}
        try:
            matrix = np.array([columns[n] for n in names], dtype=np.float64)
        except ValueError:  # columns of different lengths
            return {}
        if matrix.ndim != 2 or np.isinf(matrix).any():
            return {}
        return {name: Column("double", matrix[i]) for i, name in enumerate(names)}

    def _cast(self, name: str, kind: str, values: list[Any]) -> Column:
        if kind in ("double", "long"):
            return Column(kind, _numbers(name, kind, values))
        if kind == "string":
            return _text(name, values)
        return _flags(name, values)

    def _explain(self, columns: Columns) -> None:
        listed = ", ".join(self.names)
        for name in self.names:
            if name not in columns:
                raise RequestError(
                    f"missing column {name!r}; the model expects: {listed}", field=name
                )
        unknown = next(name for name in columns if name not in self.names)
        raise RequestError(
            f"unknown column {unknown!r}; the model expects only: {listed}", field=str(unknown)
        )

    def blank(self, *, missing: bool) -> Columns:
        """One row for warming a model: every value missing, or zeros, empty text and false."""
        zero = {"double": 0.0, "long": 0, "string": "", "boolean": False}
        return {
            n: [None if missing else zero[k]] for n, k in zip(self.names, self.kinds, strict=True)
        }
