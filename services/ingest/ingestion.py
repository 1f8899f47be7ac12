"""Turn an uploaded file into a clean table, or a DataError that tells a person how to fix it."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zlib
from collections import Counter
from typing import Any

import charset_normalizer
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared.errors import DataError, plain

MAX_COLUMNS = 2000
SNIFF_CHARS = 64 * 1024
DELIMITERS = ",;\t|"
TARGET_NAMES = ("target", "label", "y", "class")
# One row each for train, validation and test is the least a class needs to be stratified.
MIN_ROWS_PER_CLASS = 3
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
_COMMA_DECIMAL = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})*,\d+$|^[+-]?\d+,\d+$")
_DOT_DECIMAL = re.compile(r"^[+-]?\d*\.\d+$")
# "{" or "[" followed by what JSON allows next; a CSV header like "[id],name" is not JSON.
_JSON_START = re.compile(r'\{\s*["}]|\[\s*[\[{"\d\]tfn-]')
_DOT_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?$")


def read_table(
    data: bytes, *, filename: str, max_bytes: int, max_columns: int = MAX_COLUMNS
) -> pd.DataFrame:
    """Read CSV (any common encoding or delimiter), gzip-compressed CSV or Parquet into a frame."""
    _check_size(len(data), filename=filename, max_bytes=max_bytes)
    if data[:2] == b"\x1f\x8b":
        inner = _gunzip(data, filename=filename, max_bytes=max_bytes)
        return read_table(inner, filename=filename, max_bytes=max_bytes, max_columns=max_columns)
    if data[:4] == b"PAR1":
        return _read_parquet(data, filename=filename, max_columns=max_columns)
    if data[:4] in _SPREADSHEET_MAGIC:
        raise DataError(
            f"{filename!r} looks like a spreadsheet workbook, not a table file; "
            "export the sheet as CSV (UTF-8) or Parquet and upload that",
            field="file",
        )
    return _read_text(_decode(data, filename), filename=filename, max_columns=max_columns)


def _check_size(size: int, *, filename: str, max_bytes: int) -> None:
    if size == 0:
        raise DataError(f"{filename!r} is empty; upload a CSV or Parquet file with a header row")
    if size > max_bytes:
        raise DataError(
            f"{filename!r} is larger than the upload limit of {max_bytes:,} bytes; upload a "
            "smaller file or raise the limit with the setting CAUCE_MAX_UPLOAD_BYTES",
            field="file",
        )


def _gunzip(data: bytes, *, filename: str, max_bytes: int) -> bytes:
    out = bytearray()
    pending, inflater = data, zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        while pending:
            # max_length caps memory, so a small bomb cannot expand past the limit.
            out += inflater.decompress(pending, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                _check_size(len(out), filename=filename, max_bytes=max_bytes)
            if inflater.eof:  # gzip allows several members back to back, and zero padding
                pending = inflater.unused_data.lstrip(b"\x00")
                inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            elif inflater.unconsumed_tail:
                pending = inflater.unconsumed_tail
            else:
                raise zlib.error("the stream ends early")
    except zlib.error as exc:
        raise DataError(
            f"{filename!r} is a damaged gzip file ({exc}); compress it again or upload it plain",
            field="file",
        ) from exc
    return bytes(out)


def _read_parquet(data: bytes, *, filename: str, max_columns: int) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{filename!r} starts like Parquet but cannot be read ({exc}); write it again "
            "or upload CSV instead",
            field="file",
        ) from exc
    _check_header([str(name) for name in table.column_names], filename, max_columns)
    if table.num_rows == 0:
        raise _header_only(filename)
    return _normalise(table.to_pandas())


def _decode(data: bytes, filename: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_as(data, encoding, filename)
    try:
        # NUL bytes are valid UTF-8 but mean UTF-16 without a BOM, or binary data.
        text = data.decode("utf-8") if b"\x00" not in data[:SNIFF_CHARS] else ""
    except UnicodeDecodeError:
        text = ""
    if not text:
        text = _decode_as(data, _guess_encoding(data, filename), filename)
    _check_printable(text, filename)
    return text


def _guess_encoding(data: bytes, filename: str) -> str:
    guesses = list(charset_normalizer.from_bytes(data[: 4 * SNIFF_CHARS]))
    if not guesses:
        raise _not_a_table(filename)
    cleanest = min(guess.chaos for guess in guesses)
    # Short samples fit many code pages equally well. Windows-1252 (Excel on Western Windows)
    # is by far the likeliest for a table, so it wins among the cleanest guesses; Latin-1
    # decodes the few bytes Windows-1252 leaves undefined.
    for guess in guesses:
        if guess.chaos <= cleanest + 0.01 and "cp1252" in guess.could_be_from_charset:
            return "cp1252" if _decodes(data, "cp1252") else "latin-1"
    return str(guesses[0].encoding)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _decode_as(data: bytes, encoding: str, filename: str) -> str:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise DataError(
            f"{filename!r} could not be decoded as {encoding} ({exc}); save it as UTF-8 CSV",
            field="file",
        ) from exc


def _check_printable(text: str, filename: str) -> None:
    sample = text[:SNIFF_CHARS]
    controls = sum(1 for ch in sample if ch not in "\t\r\n" and unicodedata.category(ch) == "Cc")
    # Real text files have essentially no control characters; binary data is full of them.
    if "\x00" in sample or controls > len(sample) / 200:
        raise _not_a_table(filename)


def _not_a_table(filename: str) -> DataError:
    return DataError(
        f"{filename!r} is binary data, not a table; upload a CSV (text) or Parquet file",
        field="file",
    )


def _header_only(filename: str) -> DataError:
    return DataError(
        f"{filename!r} has a header but no data rows; add at least one row per example",
        field="file",
    )


def _read_text(text: str, *, filename: str, max_columns: int) -> pd.DataFrame:
    head = text.lstrip()
    if not head:
        raise DataError(f"{filename!r} holds only blank space; upload a table with a header row")
    if _JSON_START.match(head):
        raise DataError(
            f"{filename!r} looks like JSON; cauce reads tables: convert it to CSV "
            "(one header row, one line per example) or Parquet",
            field="file",
        )
    sample = _sample(text)
    delimiter = _sniff(sample)
    _scan_rows(text, delimiter=delimiter, filename=filename, max_columns=max_columns)
    decimal, thousands = _number_format(sample, delimiter)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            decimal=decimal,
            thousands=thousands,
            low_memory=False,  # one dtype per column instead of per chunk
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{filename!r} could not be parsed as CSV ({exc})", field="file") from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    return _normalise(frame)


def _sample(text: str) -> str:
    if len(text) <= SNIFF_CHARS:
        return text
    cut = text[:SNIFF_CHARS]
    # A half line at the end would skew the sniffer's per-line counts.
    return cut[: cut.rfind("\n") + 1] or cut


def _sniff(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _scan_rows(text: str, *, delimiter: str, filename: str, max_columns: int) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        _check_header([name.strip() for name in header], filename, max_columns)
        rows = 0
        for row in reader:
            if not row:
                continue
            rows += 1
            if len(row) != len(header):
                raise DataError(
                    f"line {reader.line_num} of {filename!r} has {len(row)} fields but the "
                    f"header has {len(header)}; fix that line (quote values that contain "
                    f"{delimiter!r}) so every row has the same number of fields",
                    field="file",
                )
    except csv.Error as exc:
        raise DataError(
            f"line {reader.line_num} of {filename!r} cannot be read ({exc}); fields are "
            f"limited to {csv.field_size_limit():,} characters and quotes must be closed",
            field="file",
        ) from exc
    if rows == 0:
        raise _header_only(filename)


def _check_header(names: list[str], filename: str, max_columns: int) -> None:
    if len(names) > max_columns:
        raise DataError(
            f"{filename!r} has {len(names):,} columns, more than the limit of {max_columns:,}; "
            "drop unused columns before uploading",
            field="file",
        )
    # Blank names are allowed: a pandas index column exports with an empty header.
    counts = Counter(name for name in names if name)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise DataError(
            f"{filename!r} has duplicate column names: {', '.join(map(repr, repeated))}; "
            "rename them so every column name is unique",
            field="file",
        )


def _number_format(sample: str, delimiter: str) -> tuple[str, str | None]:
    if delimiter != ";":
        return ".", None
    fields = [f.strip() for row in csv.reader(io.StringIO(sample), delimiter=";") for f in row]
    commas = sum(1 for f in fields if _COMMA_DECIMAL.match(f))
    dots = sum(1 for f in fields if _DOT_DECIMAL.match(f))
    if commas <= dots:
        return ".", None
    grouped = any(_DOT_THOUSANDS.match(f) for f in fields)
    return ",", "." if grouped else None


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Give text columns pandas' `str` dtype and gaps NaN, whichever reader produced them."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            present = column.dropna()
            if len(present) and all(isinstance(v, str) for v in present):
                frame[name] = column.astype("str")
            else:
                # The imputers only see NaN as missing; a None would become its own category.
                frame[name] = column.where(column.notna(), np.nan)
    return frame.reset_index(drop=True)


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


def empty_columns(df: pd.DataFrame, *, target: str) -> list[str]:
    """List the feature columns that have no values at all, which validate_table drops."""
    return [str(n) for n in df.columns if n != target and df[n].isna().all()]


def validate_table(df: pd.DataFrame, *, target: str, task: str, min_rows: int = 20) -> pd.DataFrame:
    """Check the table can train a model and return it without unlabelled rows or empty columns."""
    resolve_target(df, target)
    y = df[target]
    if y.isna().all():
        raise DataError(
            f"target column {target!r} has no values; fill it in or choose another target",
            field="target",
        )
    cast = _numeric_target if task == "regression" else _whole_labels
    df = df.assign(**{target: cast(y)})
    df = df[df[target].notna()].drop(columns=empty_columns(df, target=target))
    if isinstance(df[target].dtype, pd.Int64Dtype):  # no gaps are left to need the NA slot
        df = df.assign(**{target: df[target].astype("int64")})
    _check_rows(df, target=target, min_rows=min_rows)
    _check_target_values(df[target], task=task)
    if len(df.columns) < 2:
        raise DataError(
            f"the table has no feature columns besides the target {target!r}; "
            "add at least one column to predict from",
            field="target",
        )
    return df.reset_index(drop=True)


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


def _check_rows(df: pd.DataFrame, *, target: str, min_rows: int) -> None:
    if len(df) < min_rows:
        raise DataError(
            f"the table has {len(df)} rows with a value for {target!r}; at least {min_rows} "
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


def _kind(column: pd.Series) -> str:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    present = column.dropna()
    if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
        return "boolean"
    return "string"


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _profile_column(column: pd.Series, kind: str) -> dict[str, Any]:
    present = column.dropna()
    stats: dict[str, Any] = {
        "count": len(present),
        "missing": int(len(column) - len(present)),
        "distinct": int(present.nunique()),
    }
    if kind in ("number", "integer") and len(present):
        for name in ("min", "max", "mean", "std"):
            stats[name] = _json(float(getattr(present, name)()))
    elif kind == "datetime" and len(present):
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

