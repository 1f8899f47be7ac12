"""An input signature compiled once per model: request columns to typed numpy arrays, cheaply,
and the one message for each way a request can miss the signature.

The common case (numbers as JSON numbers, text as JSON strings) is one type scan and one numpy
conversion per column; anything else is cast value by value, so a bad value is reported with its
column and row. Values come from JSON or from a file read with its gaps as None; nothing here
needs pandas.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from shared.datetext import as_text, example, parse
from shared.errors import RequestError

Columns = dict[str, list[Any]]
NUMBERS = frozenset({int, float, type(None)})
TEXT = frozenset({str, type(None)})
FLAGS = frozenset({bool, type(None)})
TYPES = ("double", "long", "string", "boolean")  # MLflow ColSpec type names
WORDS = {"true": True, "false": False}


SHOWN_CHARS = 80  # a name or value quoted in a message is cut to this many characters


def shown(value: Any) -> str:
    """A name or value as a message quotes it: text cut to SHOWN_CHARS with an ellipsis, and a
    list or object by its kind (a request may nest one deeper than repr can go)."""
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def missing_column(name: str, names: Sequence[str]) -> RequestError:
    """The error for a column the model needs that the request leaves out."""
    return RequestError(
        f"missing column {shown(name)!r}; the model expects: {', '.join(names)}",
        field=shown(name),
    )


def unknown_column(name: Any, names: Sequence[str]) -> RequestError:
    """The error for a column the model does not take."""
    return RequestError(
        f"unknown column {shown(str(name))!r}; the model expects only: {', '.join(names)}",
        field=shown(str(name)),
    )


def wrong_value(name: str, row: int, value: Any, expected: str) -> RequestError:
    """The error for the first value of a column that is not of the column's type."""
    quoted = repr(shown(value)) if isinstance(value, str) else shown(value)
    return RequestError(
        f"column {name!r} expects {expected}, but row {row} has {quoted}; "
        f"send {expected} or null for missing values",
        field=name,
    )


def _is_missing(value: Any) -> bool:
    if isinstance(value, date):  # NaT, a missing timestamp, is a datetime unequal to itself
        return bool(value != value)
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _parses_as_float(text: str) -> bool:
    try:
        return not math.isinf(float(text))
    except ValueError:
        return False


def _each_double(name: str, values: list[Any]) -> np.ndarray:
    """Value by value: numbers and numeric text as floats, gaps as NaN, else the first bad one."""
    out: list[float] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            out.append(math.nan)
        elif _is_number(value) or (isinstance(value, str) and _parses_as_float(value)):
            out.append(float(value))
        else:
            raise wrong_value(name, row, value, "a number")
    return np.array(out, dtype=np.float64)


def to_numbers(name: str, kind: str, values: list[Any]) -> np.ndarray:
    """A "double" or "long" column as float64 (gaps as NaN); a long's values must be whole."""
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
        array = _each_double(name, values)
    if kind == "long":
        whole = np.isnan(array) | (array == np.floor(array))
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise wrong_value(name, row, values[row], "an integer")
    return array


def _each_text(name: str, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            out.append(None)
        elif isinstance(value, str):
            out.append(value)
        elif as_text(value) is not None:  # a date or timestamp (from a Parquet file), as ISO text
            out.append(as_text(value))
        elif _is_number(value):
            # A category such as a size "3" may arrive as a JSON number; match the CSV text.
            number = float(value)
            out.append(str(int(number)) if number.is_integer() else str(value))
        else:
            raise wrong_value(name, row, value, "text")
    return out


def _each_flag(name: str, values: list[Any]) -> np.ndarray:
    out: list[Any] = []
    for row, value in enumerate(values):
        if _is_missing(value):
            out.append(np.nan)
        elif isinstance(value, bool | np.bool_):
            out.append(bool(value))
        elif isinstance(value, str) and value.strip().lower() in WORDS:
            out.append(WORDS[value.strip().lower()])
        else:
            raise wrong_value(name, row, value, "true or false")
    has_gap = any(v is np.nan for v in out)
    return np.array(out, dtype=object if has_gap else bool)


@dataclass(frozen=True)
class Column:
    """A checked column: float64 for numbers, bool or object for flags, object for text."""

    kind: str
    values: np.ndarray
    missing: np.ndarray | None = None  # for text: where a value was missing
    when: np.ndarray | None = None  # for a date column: its dates, datetime64 (NaT if missing)


def to_text(name: str, values: list[Any]) -> Column:
    """A "string" column as an object array of text, with where a value was missing."""
    plain = set(map(type, values)) <= TEXT
    array = np.array(values if plain else _each_text(name, values), dtype=object)
    missing = np.array([not isinstance(v, str) for v in array.tolist()], dtype=bool)
    return Column("string", array, missing)


def to_dates(name: str, form: str, values: list[Any]) -> Column:
    """A date column: its text (as to_text gives it) and its dates; RequestError naming the
    column for the first value that is not a date in `form` (empty text counts as missing)."""
    text = to_text(name, values).values
    when = parse(text.tolist(), form)
    blank = np.array([not isinstance(v, str) or not v.strip() for v in text.tolist()], dtype=bool)
    bad = np.isnat(when) & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise wrong_value(name, row, text[row], f"a date like {example(form)}")
    kept = text.copy()
    kept[blank] = None
    return Column("string", kept, blank, when)


def to_flags(name: str, values: list[Any]) -> Column:
    """A "boolean" column: bool, or object with NaN for the gaps."""
    if set(map(type, values)) <= FLAGS and None not in values:
        return Column("boolean", np.array(values, dtype=bool))
    return Column("boolean", _each_flag(name, values))


@dataclass(frozen=True)
class CompiledSignature:
    """The model's input columns, in order, with their types; check() validates a request."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    ignored: frozenset[str] = frozenset()  # columns a request may hold and the model never reads
    forms: tuple[str | None, ...] = ()  # a date column's form (shared.datetext), else None

    @classmethod
    def compile(
        cls,
        signature: list[dict[str, str]] | tuple[dict[str, str], ...],
        *,
        ignored: Sequence[str] = (),
    ) -> CompiledSignature:
        """Compile the {"name", "type"} list that a version records; `ignored` columns (the
        target, in rows copied from the training file) are dropped from requests."""
        for spec in signature:  # an unknown type fails at load, not at the first request
            if spec["type"] not in TYPES:
                raise ValueError(
                    f"signature type {spec['type']!r} for {spec['name']!r} is not one of {TYPES}"
                )
        names = tuple(s["name"] for s in signature)
        kinds = tuple(s["type"] for s in signature)
        forms = tuple(s.get("format") for s in signature)
        return cls(names, kinds, frozenset(n for n in ignored if n) - set(names), forms)

    def check(self, columns: Columns) -> dict[str, Column]:
        """Typed columns in signature order; RequestError naming the column otherwise."""
        if columns.keys() != set(self.names) and self.ignored & columns.keys():
            columns = {name: values for name, values in columns.items() if name not in self.ignored}
        if columns.keys() != set(self.names):
            missing = [name for name in self.names if name not in columns]
            if missing:
                raise missing_column(missing[0], self.names)
            unknown = next(name for name in columns if name not in self.names)
            raise unknown_column(unknown, self.names)
        numbers = self._plain_numbers(columns)
        forms = self.forms or (None,) * len(self.names)
        return {
            name: numbers[name] if name in numbers else self._cast(name, kind, form, columns[name])
            for name, kind, form in zip(self.names, self.kinds, forms, strict=True)
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

    def _cast(self, name: str, kind: str, form: str | None, values: list[Any]) -> Column:
        if form:
            return to_dates(name, form, values)
        if kind in ("double", "long"):
            return Column(kind, to_numbers(name, kind, values))
        if kind == "string":
            return to_text(name, values)
        return to_flags(name, values)

    def blank(self, *, missing: bool) -> Columns:
        """One row for warming a model: every value missing, or zeros, empty text and false."""
        zero = {"double": 0.0, "long": 0, "string": "", "boolean": False}
        return {
            n: [None if missing else zero[k]] for n, k in zip(self.names, self.kinds, strict=True)
        }
