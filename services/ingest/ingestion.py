"""Check a table can train a model: find its target and task, validate it, profile it."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shared.datetext import ISO, FormTally, detect
from shared.errors import DataError, plain
from shared.signature import column_type
from shared.spec import MIN_ROWS_PER_CLASS

TARGET_NAMES = ("target", "label", "y", "class")
# A guessed target this mostly distinct is a row identifier, not a class.
DISTINCT_FOR_CLASSES = 0.9
SET_TARGET = "set the target with --target or in the spec"

# The profile speaks of kinds; the signature of MLflow column types.
PROFILE_KINDS = {"long": "integer", "double": "number", "string": "string", "boolean": "boolean"}


def infer_task(y: pd.Series) -> str:
    """Guess the task from the target.

    Text, booleans and categories are classification. Whole numbers are classification when
    there are at most 2 distinct values, or at most 20 distinct values that are also under 5%
    of the non-missing rows (so a 0-5 rating in 1,000 rows is a class, a count in 40 rows is
    not). Everything else is regression.
    """
    present = y.dropna()
    if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
        return "classification"
    values = present.to_numpy(dtype=float)
    if (
        len(values) == 0
        or not np.all(np.isfinite(values))
        or not np.all(values == np.round(values))
    ):
        return "regression"
    distinct = len(np.unique(values))
    if distinct <= 2 or (distinct <= 20 and distinct / len(values) < 0.05):
        return "classification"
    return "regression"


def _column_list(df: pd.DataFrame) -> str:
    names = [repr(str(n)) for n in df.columns[:30]]
    more = f" and {len(df.columns) - 30} more" if len(df.columns) > 30 else ""
    return ", ".join(names) + more


def resolve_target(df: pd.DataFrame, target: str | None) -> str:
    """Return the target column: the named one, else target/label/y/class, else the last column."""
    if target is not None:
        if target in df.columns:
            return target
        raise DataError(
            f"target column {target!r} is not in the table; available columns: "
            f"{_column_list(df)}. Set the target to one of them",
            field="target",
        )
    by_name = {str(n).strip().lower(): str(n) for n in reversed(list(df.columns))}
    for candidate in TARGET_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    return str(df.columns[-1])


def check_guessed_target(y: pd.Series, *, task: str) -> None:
    """Refuse a guessed target that looks wrong: dates, an id, or nearly one class per row."""
    present = y.dropna()
    why = None
    if _looks_like_dates(present):
        why = "it holds dates"
    elif _looks_like_id(str(y.name)) and present.nunique() == len(present):
        why = "it looks like an id (a different value in every row)"
    elif task == "classification" and present.nunique() > DISTINCT_FOR_CLASSES * len(present):
        share = present.nunique() / max(len(present), 1)
        why = f"as a class it has a different value in {share:.0%} of the rows"
    if why is not None:
        raise DataError(
            f"no target was set and {y.name!r} was guessed as the target, but {why}; {SET_TARGET}",
            field="target",
        )


def _looks_like_dates(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return True
    if len(values) == 0 or pd.api.types.is_numeric_dtype(values.dtype):
        return False
    parsed = pd.to_datetime(values.astype(str), errors="coerce", format="ISO8601")
    return bool(parsed.notna().all())


def _looks_like_id(name: str) -> bool:
    return re.fullmatch(r"(.*[^a-z])?(id|uuid|guid)", name.strip().lower()) is not None


def empty_columns(df: pd.DataFrame, *, target: str) -> list[str]:
    """List the feature columns that have no values at all, which validate_table drops."""
    return [str(n) for n in df.columns if n != target and df[n].isna().all()]


def validate_table(df: pd.DataFrame, *, target: str, task: str, min_rows: int = 20) -> pd.DataFrame:
    """Check the table can train a model and return it without unlabelled rows or empty columns."""
    resolve_target(df, target)
    labels, drop = check_target(
        df[target],
        columns=[str(n) for n in df.columns],
        empty=empty_columns(df, target=target),
        task=task,
        min_rows=min_rows,
    )
    df = df.drop(columns=drop).iloc[labels.index].reset_index(drop=True)
    return df.assign(**{target: labels.reset_index(drop=True)})


def check_target(
    y: pd.Series, *, columns: list[str], empty: list[str], task: str, min_rows: int
) -> tuple[pd.Series, list[str]]:
    """Check the target column (all a streamed table needs in memory) and the table's columns.

    Returns the labelled rows of the target, cast for the task (their index is their row in the
    table), and the feature columns to drop because they have no values at all.
    """
    target = str(y.name)
    y = y.reset_index(drop=True)
    if y.isna().all():
        raise DataError(
            f"target column {target!r} has no values; fill it in or choose another target",
            field="target",
        )
    cast = _numeric_target if task == "regression" else _whole_labels
    labels = cast(y)
    labels = labels[labels.notna()]
    if isinstance(labels.dtype, pd.Int64Dtype):  # no gaps are left to need the NA slot
        labels = labels.astype("int64")
    _check_rows(len(labels), target=target, min_rows=min_rows)
    _check_target_values(labels, task=task)
    if not [name for name in columns if name != target and name not in empty]:
        raise DataError(
            f"the table has no feature columns besides the target {target!r}; "
            "add at least one column to predict from",
            field="target",
        )
    return labels, [name for name in empty if name != target]


def _numeric_target(y: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(y.dtype):
        return y.astype(float)
    numbers = pd.to_numeric(y, errors="coerce")
    bad = numbers.isna() & y.notna()
    if pd.api.types.is_numeric_dtype(numbers.dtype) and not bad.any():
        if np.isinf(numbers.to_numpy(dtype=float)).any():
            raise DataError(f"target {y.name!r} contains infinity; replace it", field=str(y.name))
        return numbers.astype(float)
    position = int(np.flatnonzero(bad.to_numpy())[0])
    raise DataError(
        f"column {y.name!r} has text in a numeric column (row {position + 1}: "
        f"{y.iloc[position]!r}); a regression target must be numbers: fix or remove that "
        "value, or use classification",
        field=str(y.name),
    )


def _whole_labels(y: pd.Series) -> pd.Series:
    # Gaps force an integer label column to float; labels read better as 1 than as 1.0.
    present = y.dropna()
    if pd.api.types.is_float_dtype(y.dtype) and (present == present.round()).all():
        return y.astype("Int64")
    return y


def _check_rows(rows: int, *, target: str, min_rows: int) -> None:
    if rows < min_rows:
        raise DataError(
            f"the table has {rows} rows with a value for {target!r}; at least {min_rows} "
            "are needed to train and test a model: add rows",
            field="target",
        )


def _check_target_values(y: pd.Series, *, task: str) -> None:
    counts = y.value_counts()
    if len(counts) == 1:
        what = "a single class" if task == "classification" else "one constant value"
        raise DataError(
            f"target {y.name!r} has {what} ({plain(counts.index[0])!r}) in every row, so there is "
            "nothing to learn; add rows with other values or choose another target",
            field=str(y.name),
        )
    if task != "classification":
        return
    small = counts[counts < MIN_ROWS_PER_CLASS]
    if len(small):
        raise DataError(
            f"class {plain(small.index[0])!r} of target {y.name!r} has only {int(small.iloc[0])} "
            f"row(s); each class needs at least {MIN_ROWS_PER_CLASS} (one each for training, "
            "validation and test): add rows for it or remove it",
            field=str(y.name),
        )


def date_form(column: pd.Series) -> str | None:
    """The form requests write a date column in (shared.datetext): "iso" for timestamps and
    dates, the detected one for text; None for a column that does not hold dates."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return ISO
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return None
    return detect(column.dropna().astype(str))


def _kind(column: pd.Series) -> str:
    if date_form(column) is not None:
        return "datetime"
    return PROFILE_KINDS[column_type(column)]


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, date):  # a Timestamp, or a Parquet date
        return value.isoformat()
    return value


def _timestamps(present: pd.Series) -> bool:
    """Whether a column holds timestamps or dates (from Parquet), not text."""
    if pd.api.types.is_datetime64_any_dtype(present.dtype):
        return True
    return bool(len(present)) and all(isinstance(v, date) for v in present)


def _profile_column(column: pd.Series, kind: str) -> dict[str, Any]:
    present = column.dropna()
    stats: dict[str, Any] = {
        "count": len(present),
        "missing": int(len(column) - len(present)),
        "distinct": int(present.nunique()),
    }
    if kind == "datetime":
        stats["format"] = date_form(column)
    if kind in ("number", "integer") and len(present):
        for name in ("min", "max", "mean", "std"):
            stats[name] = _json(float(getattr(present, name)()))
    elif kind == "datetime" and _timestamps(present):
        stats.update(min=_json(present.min()), max=_json(present.max()))
    else:
        top = present.astype(str).value_counts().head(5)
        stats["top"] = [{"value": str(v), "count": int(c)} for v, c in top.items()]
    return stats


def profile_table(df: pd.DataFrame) -> dict[str, Any]:
    """Summarise the table as JSON-ready {rows, schema, columns} for the run page."""
    schema = {str(name): _kind(df[name]) for name in df.columns}
    columns = {str(name): _profile_column(df[name], schema[str(name)]) for name in df.columns}
    return {"rows": len(df), "schema": schema, "columns": columns}


# Distinct values are counted exactly up to this many per column, then estimated (the profile
# says "estimated"); text values are tallied for the top 5 in a counter of bounded size.
DISTINCT_EXACT = 65_536
TOP_KEPT = 20_000


class Profiler:
    """profile_table's summary, built batch by batch: memory bounded by the sketches, not rows."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns: dict[str, _ColumnSketch] = {}

    def __call__(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add one batch (or row group) of the table."""
        self.rows += batch.num_rows
        frame = batch.to_pandas()
        for name, kind in zip(batch.schema.names, batch.schema.types, strict=True):
            sketch = self.columns.setdefault(name, _ColumnSketch(kind))
            sketch.add(frame[name])

    def result(self) -> dict[str, Any]:
        """The profile as profile_table gives it, plus "estimated" where a sketch was full."""
        schema = {name: sketch.kind() for name, sketch in self.columns.items()}
        columns = {name: sketch.stats(schema[name]) for name, sketch in self.columns.items()}
        return {"rows": self.rows, "schema": schema, "columns": columns}


class _ColumnSketch:
    def __init__(self, kind: pa.DataType) -> None:
        self.type = kind
        self.count = self.missing = 0
        self.hashes = np.empty(0, dtype=np.uint64)  # the smallest distinct value hashes
        self.full = False
        self.mean = self.m2 = 0.0
        self.low: Any = None
        self.high: Any = None
        self.top: Counter[str] = Counter()
        self.top_pruned = False
        # Text columns are dates if (nearly) all their values are, in one form.
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        self.dates = FormTally() if text else None

    def add(self, column: pd.Series) -> None:
        present = column.dropna()
        self.count += len(present)
        self.missing += len(column) - len(present)
        if not len(present):
            return
        numeric = pd.api.types.is_numeric_dtype(present.dtype) and not pd.api.types.is_bool_dtype(
            present.dtype
        )
        if numeric:
            values = present.to_numpy(dtype=float)
            hashed = pd.util.hash_array(values)
            self._moments(values)
        else:
            text = present.astype(str)
            hashed = pd.util.hash_array(text.to_numpy(dtype=object))
            if pd.api.types.is_datetime64_any_dtype(present.dtype) or pa.types.is_date(self.type):
                low, high = present.min(), present.max()
                self.low = low if self.low is None else min(self.low, low)
                self.high = high if self.high is None else max(self.high, high)
            else:
                counts = text.value_counts(sort=False).to_dict()
                self.top.update(counts)
                if self.dates is not None and self.dates.misses:
                    self.dates.add(counts)
                if len(self.top) > 2 * TOP_KEPT:
                    self.top = Counter(dict(self.top.most_common(TOP_KEPT)))
                    self.top_pruned = True
        if self.full:  # only hashes under the largest kept one can change the sketch
            hashed = hashed[hashed < self.hashes.max()]
        kept = pd.unique(np.concatenate([self.hashes, hashed]))
        if len(kept) > DISTINCT_EXACT:  # keep the smallest hashes (in no particular order)
            kept, self.full = np.partition(kept, DISTINCT_EXACT - 1)[:DISTINCT_EXACT], True
        self.hashes = kept

    def _moments(self, values: np.ndarray) -> None:
        n_a, n_b = self.count - len(values), len(values)
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        delta = mean_b - self.mean
        total = n_a + n_b
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta**2 * n_a * n_b / total
        low, high = float(values.min()), float(values.max())
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def kind(self) -> str:
        kind = self.type
        if pa.types.is_integer(kind):
            return "integer" if self.missing == 0 else "number"
        if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return "number"
        if pa.types.is_boolean(kind):
            return "boolean"
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or self.form() is not None:
            return "datetime"
        return "string"

    def form(self) -> str | None:
        if pa.types.is_timestamp(self.type) or pa.types.is_date(self.type):
            return ISO
        return self.dates.form() if self.dates is not None else None

    def distinct(self) -> int:
        if not self.full:
            return len(self.hashes)
        # k minimum values: the k-th smallest of uniform hashes sits near k / distinct.
        kth = float(self.hashes.max()) / 2.0**64
        return int((DISTINCT_EXACT - 1) / kth)

    def stats(self, kind: str) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "count": self.count,
            "missing": self.missing,
            "distinct": self.distinct(),
        }
        estimated = ["distinct"] if self.full else []
        if kind == "datetime":
            stats["format"] = self.form()
        if kind in ("number", "integer") and self.count:
            std = (self.m2 / (self.count - 1)) ** 0.5 if self.count > 1 else float("nan")
            for name, value in (("min", self.low), ("max", self.high), ("mean", self.mean)):
                stats[name] = _json(float(value))
            stats["std"] = _json(std)
        elif kind == "datetime" and self.low is not None:
            stats.update(min=_json(self.low), max=_json(self.high))
        else:
            top = self.top.most_common(5)
            stats["top"] = [{"value": str(v), "count": int(c)} for v, c in top]
            if self.top_pruned:
                estimated.append("top")
        if estimated:
            stats["estimated"] = estimated
        return stats
