"""Turn an uploaded file's bytes into a table, or a DataError that tells a person how to fix it."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zlib
from collections import Counter

import charset_normalizer
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared.errors import DataError

MAX_COLUMNS = 2000
MAX_GZIP_LAYERS = 3  # a .csv.gz compressed again still reads; a file nested deeper is refused
MAX_CELLS = 50_000_000  # rows x columns of a Parquet file; CAUCE_MAX_TABLE_CELLS sets it per run
SNIFF_CHARS = 64 * 1024
DELIMITERS = ",;\t|"
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
    data: bytes,
    *,
    filename: str,
    max_bytes: int,
    max_columns: int = MAX_COLUMNS,
    max_cells: int = MAX_CELLS,
) -> pd.DataFrame:
    """Read CSV (any common encoding or delimiter), gzip-compressed CSV or Parquet into a frame."""
    _check_size(len(data), filename=filename, max_bytes=max_bytes)
    for _ in range(MAX_GZIP_LAYERS + 1):
        if data[:2] != b"\x1f\x8b":
            break
        data = _gunzip(data, filename=filename, max_bytes=max_bytes)
        _check_size(len(data), filename=filename, max_bytes=max_bytes)
    else:
        raise DataError(
            f"{filename!r} is gzip inside gzip more than {MAX_GZIP_LAYERS} times; compress the "
            "table once (or not at all) and upload that",
            field="file",
        )
    if data[:4] == b"PAR1":
        return _read_parquet(data, filename=filename, max_columns=max_columns, max_cells=max_cells)
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


def _read_parquet(data: bytes, *, filename: str, max_columns: int, max_cells: int) -> pd.DataFrame:
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        # A few KB of Parquet can hold millions of repeated rows: count them before reading.
        _check_cells(parquet.metadata, filename, max_cells)
        table = parquet.read()
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


def _check_cells(metadata: pq.FileMetaData, filename: str, max_cells: int) -> None:
    rows, columns = metadata.num_rows, metadata.num_columns
    if rows * columns > max_cells:
        raise DataError(
            f"{filename!r} holds {rows:,} rows x {columns:,} columns = {rows * columns:,} values, "
            f"more than the limit of {max_cells:,}; upload fewer rows, or raise the limit with "
            "the setting CAUCE_MAX_TABLE_CELLS",
            field="file",
        )


def _decode(data: bytes, filename: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_as(data, encoding, filename)
    # NUL bytes are valid UTF-8 but mean UTF-16 without a BOM, or binary data.
    text = None if b"\x00" in data[:SNIFF_CHARS] else _try_decode(data, "utf-8")
    if text is None:
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
            return "cp1252" if _try_decode(data, "cp1252") is not None else "latin-1"
    return str(guesses[0].encoding)


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


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
