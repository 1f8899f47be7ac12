"""Turn an uploaded file into a Parquet table, streamed block by block, or a DataError that tells
a person how to fix it.

Memory does not grow with the file: gzip is inflated to a temporary file, CSV is parsed by
pyarrow in blocks (`block_size` bytes each) and every block becomes one row group of the output,
Parquet input is copied row group by row group. Disk is what bounds a file, so free space in the
temporary directory is checked before anything is written there.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import shutil
import tempfile
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import charset_normalizer
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shared.errors import DataError

MAX_COLUMNS = 2000
MAX_GZIP_LAYERS = 3  # a .csv.gz compressed again still reads; a file nested deeper is refused
# Rows x columns a Parquet file may declare; CAUCE_MAX_TABLE_CELLS sets it per run. Large enough
# for 10 M rows x 20 columns; it stops a few KB of Parquet that expands to billions of values.
MAX_CELLS = 500_000_000
SNIFF_CHARS = 64 * 1024
DELIMITERS = ",;\t|"
# Bytes of CSV parsed at a time. Small on purpose: pyarrow's reader queues up to 32 blocks ahead
# of the consumer (16 MiB blocks held 628 MB of a 650 MB file); row groups gather many blocks.
BLOCK_SIZE = 1024 * 1024
ROW_GROUP_ROWS = 128 * 1024  # rows of each Parquet row group written (and profiled at once)
MAX_BLOCK_SIZE = 1024 * 1024 * 1024  # a single row longer than this is refused
PARQUET_BATCH_ROWS = 128 * 1024
# Free space left in the temporary directory after a download or a decompression, so the worker
# (and whatever else shares that disk) can still write its outputs.
DISK_RESERVE_BYTES = 256 * 1024 * 1024
# Thousands separators ("1.234,5") are not something pyarrow parses: a file that has them is read
# whole by pandas as before, which is only done up to this size.
PANDAS_FALLBACK_BYTES = 256 * 1024 * 1024
FIELD_LIMIT = csv.field_size_limit()  # characters in one field, as Python's csv module allows
# What pandas reads as missing, so the streamed reader sees the same gaps it did.
NA_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip
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
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")

Batches = Callable[[pa.Table], None]


@dataclass(frozen=True)
class Part:
    """One input file on local disk, and the name a person knows it by."""

    path: Path
    name: str


@dataclass(frozen=True)
class Streamed:
    """What stream_table wrote: the Parquet file's rows and columns."""

    rows: int
    columns: list[str]


class _Restart(Exception):
    """A later block showed a column's type must be wider (or a row longer than a block)."""

    def __init__(self, column: str | None = None, kind: pa.DataType | None = None) -> None:
        super().__init__(column)
        self.column, self.kind = column, kind


_RECODE = "\0recode:"  # a _Restart's column for a part that is cp1252 past its first bytes


def read_table(
    data: bytes,
    *,
    filename: str,
    max_bytes: int | None = None,
    max_columns: int = MAX_COLUMNS,
    max_cells: int = MAX_CELLS,
    block_size: int = BLOCK_SIZE,
) -> pd.DataFrame:
    """Read CSV (any common encoding or delimiter), gzip-compressed CSV or Parquet into a frame:
    the streamed reader on a temporary file, for small inputs and tests."""
    with tempfile.TemporaryDirectory(prefix="cauce-read-") as tmp:
        source, out = Path(tmp) / "input", Path(tmp) / "data.parquet"
        source.write_bytes(data)
        stream_table(
            [Part(source, filename)],
            out,
            max_bytes=max_bytes,
            max_columns=max_columns,
            max_cells=max_cells,
            block_size=block_size,
        )
        return normalise(pq.read_table(out).to_pandas())


def stream_table(
    parts: Sequence[Part],
    out: Path,
    *,
    max_bytes: int | None = None,
    max_columns: int = MAX_COLUMNS,
    max_cells: int = MAX_CELLS,
    block_size: int = BLOCK_SIZE,
    reserve_bytes: int = DISK_RESERVE_BYTES,
    on_batch: Callable[[], Batches] | None = None,
) -> Streamed:
    """Write the parts, in order, as one Parquet table at `out`, a row group per block.

    `on_batch()` gives a fresh callback that sees every written row group (it is called again
    when the table starts over because a later block needed a wider type for a column).
    """
    with tempfile.TemporaryDirectory(prefix="cauce-ingest-", dir=out.parent) as tmp:
        sources = [
            _plain(part, Path(tmp), max_bytes=max_bytes, reserve_bytes=reserve_bytes)
            for part in parts
        ]
        widened: dict[str, pa.DataType] = {}
        while True:
            try:
                feed = on_batch() if on_batch is not None else None
                return _write(
                    sources, out, widened, block_size, max_columns, max_cells, feed, Path(tmp)
                )
            except _Restart as restart:
                if restart.column is None:
                    block_size *= 2
                    if block_size > MAX_BLOCK_SIZE:
                        raise DataError(
                            f"{parts[0].name!r} has a row longer than {MAX_BLOCK_SIZE:,} bytes; "
                            "check its quotes are closed",
                            field="file",
                        ) from None
                else:
                    assert restart.kind is not None
                    if widened.get(restart.column) == restart.kind:  # nothing wider to try
                        raise DataError(
                            f"column {restart.column!r} cannot be read as {restart.kind}",
                            field="file",
                        ) from None
                    widened[restart.column] = restart.kind


def check_disk(size: int, *, filename: str, directory: Path, reserve_bytes: int) -> None:
    """Refuse to write `size` bytes to `directory` when that would leave under the reserve."""
    free = shutil.disk_usage(directory).free
    if size + reserve_bytes > free:
        raise _disk_error(size, free, directory, reserve_bytes, filename)


def _disk_error(size: int, free: int, directory: Path, reserve: int, filename: str) -> DataError:
    return DataError(
        f"{filename!r} needs {_size(size)} or more in the temporary directory "
        f"{str(directory)!r}, which has {_size(free)} free (and keeps {_size(reserve)} spare); "
        "free space there, or set TMPDIR for the ingest worker to a directory on a larger disk",
        field="file",
    )


def _size(n: int) -> str:
    return f"{n:,} bytes ({n / 2**30:.2f} GiB)" if n >= 2**30 else f"{n:,} bytes"


def _check_size(size: int, *, filename: str, max_bytes: int | None) -> None:
    if size == 0:
        raise DataError(f"{filename!r} is empty; upload a CSV or Parquet file with a header row")
    if max_bytes is not None and size > max_bytes:
        raise DataError(
            f"{filename!r} is larger than the upload limit of {max_bytes:,} bytes; upload a "
            "smaller file or raise the limit with the setting CAUCE_MAX_UPLOAD_BYTES",
            field="file",
        )


def _plain(part: Part, tmp: Path, *, max_bytes: int | None, reserve_bytes: int) -> Part:
    """The part with every gzip layer taken off (into files under `tmp`)."""
    path = part.path
    _check_size(path.stat().st_size, filename=part.name, max_bytes=max_bytes)
    for layer in range(MAX_GZIP_LAYERS + 1):
        with open(path, "rb") as head:
            if head.read(2) != b"\x1f\x8b":
                return Part(path, part.name)
        inflated = tmp / f"{path.name}.{layer}"
        _gunzip(path, inflated, filename=part.name, max_bytes=max_bytes, reserve=reserve_bytes)
        if path != part.path:
            path.unlink()
        path = inflated
        _check_size(path.stat().st_size, filename=part.name, max_bytes=max_bytes)
    raise DataError(
        f"{part.name!r} is gzip inside gzip more than {MAX_GZIP_LAYERS} times; compress the "
        "table once (or not at all) and upload that",
        field="file",
    )


def _gunzip(
    source: Path, target: Path, *, filename: str, max_bytes: int | None, reserve: int
) -> None:
    """Inflate `source` into `target` a chunk at a time. A bomb stops at the upload cap, if one
    is set, and always before the disk would fall under the reserve."""
    chunk = 1 << 20
    free = shutil.disk_usage(target.parent).free
    room = free - reserve
    cap = room if max_bytes is None else min(max_bytes, room)
    written = 0
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        with open(source, "rb") as src, open(target, "wb") as out:
            pending = src.read(chunk)
            while pending:
                piece = inflater.decompress(pending, chunk)
                written += len(piece)
                if written > cap:
                    _check_size(written, filename=filename, max_bytes=max_bytes)
                    raise _disk_error(written, free, target.parent, reserve, filename)
                out.write(piece)
                if inflater.eof:  # gzip allows several members back to back, and zero padding
                    rest = inflater.unused_data + src.read(chunk)
                    while rest and not rest.lstrip(b"\x00"):
                        rest = src.read(chunk)
                    pending = rest.lstrip(b"\x00")
                    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
                elif inflater.unconsumed_tail:
                    pending = inflater.unconsumed_tail
                else:
                    pending = src.read(chunk)
                    if not pending:
                        out.write(inflater.flush())  # output zlib held back at a chunk's end
                        if not inflater.eof:
                            raise zlib.error("the stream ends early")
    except zlib.error as exc:
        raise DataError(
            f"{filename!r} is a damaged gzip file ({exc}); compress it again or upload it plain",
            field="file",
        ) from exc


@dataclass(frozen=True)
class _TextFormat:
    encoding: str
    delimiter: str
    decimal: str
    thousands: str | None
    header: list[str]  # the names as written in the file
    names: list[str]  # the names the table gets


def _write(
    sources: list[Part],
    out: Path,
    widened: dict[str, pa.DataType],
    block_size: int,
    max_columns: int,
    max_cells: int,
    feed: Batches | None,
    tmp: Path,
) -> Streamed:
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    pending: list[pa.RecordBatch] = []

    def flush() -> None:
        if pending and writer is not None:
            group = pa.Table.from_batches(pending)
            writer.write_table(group)
            if feed is not None:
                feed(group)
            pending.clear()

    try:
        for index, part in enumerate(sources):
            batches = _batches(part, widened, block_size, max_columns, max_cells, tmp)
            part_rows = 0
            for batch in batches:
                if schema is None:
                    schema = _writer_schema(batch.schema, widened)
                    writer = pq.ParquetWriter(out, schema)
                batch = _conform(batch, schema, part, first=sources[0], index=index)
                if batch.num_rows == 0:
                    continue
                pending.append(batch)
                part_rows += batch.num_rows
                if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                    flush()
            if part_rows == 0:
                raise _header_only(part.name)
            rows += part_rows
        flush()
    finally:
        if writer is not None:
            writer.close()
    assert schema is not None
    return Streamed(rows=rows, columns=schema.names)


def _writer_schema(schema: pa.Schema, widened: dict[str, pa.DataType]) -> pa.Schema:
    """The first batch's schema, with columns a later block widened, and empty columns as numbers
    (as pandas reads a column with no values)."""
    fields = []
    for field in schema:
        kind = widened.get(field.name, field.type)
        if pa.types.is_null(kind):
            kind = pa.float64()
        fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


def _conform(
    batch: pa.RecordBatch, schema: pa.Schema, part: Part, *, first: Part, index: int
) -> pa.RecordBatch:
    """The batch in the writer's column order and types; a restart when a type must widen."""
    if batch.schema.names != schema.names:
        mine, theirs = set(batch.schema.names), set(schema.names)
        if mine != theirs:
            missing, extra = sorted(theirs - mine), sorted(mine - theirs)
            what = []
            if missing:
                what.append(f"lacks {', '.join(map(repr, missing))}")
            if extra:
                what.append(f"has {', '.join(map(repr, extra))} in addition")
            raise DataError(
                f"part {index + 1} ({part.name!r}) does not have the columns of "
                f"{first.name!r}: it {' and '.join(what)}; every part of a dataset must have "
                "the same columns",
                field="file",
            )
        batch = batch.select(schema.names)
    if batch.schema.equals(schema):
        return batch
    for field, have in zip(schema, batch.schema, strict=True):
        if have.type != field.type and not pa.types.is_null(have.type):
            wider = _common(field.type, have.type)
            if wider != field.type:
                raise _Restart(field.name, wider)
    return pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]


def _common(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type both fit in, as pandas would pick for the column."""
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(t(a) for t in numeric) and any(t(b) for t in numeric):
        return pa.int64() if pa.types.is_integer(a) and pa.types.is_integer(b) else pa.float64()
    return pa.string()


def _batches(
    part: Part,
    widened: dict[str, pa.DataType],
    block_size: int,
    max_columns: int,
    max_cells: int,
    tmp: Path,
) -> Iterator[pa.RecordBatch]:
    with open(part.path, "rb") as file:
        head = file.read(4 * SNIFF_CHARS)
    if head[:4] == b"PAR1":
        return _parquet_batches(part, widened, max_columns, max_cells)
    if head[:4] in _SPREADSHEET_MAGIC:
        raise DataError(
            f"{part.name!r} looks like a spreadsheet workbook, not a table file; "
            "export the sheet as CSV (UTF-8) or Parquet and upload that",
            field="file",
        )
    text_format = _text_format(head, part, max_columns, recoded=_RECODE + str(part.path) in widened)
    if text_format.thousands is not None:
        return _pandas_batches(part, text_format, max_columns)
    return _csv_batches(part, text_format, widened, block_size)


def _parquet_batches(
    part: Part, widened: dict[str, pa.DataType], max_columns: int, max_cells: int
) -> Iterator[pa.RecordBatch]:
    try:
        # pre_buffer reads column chunks ahead without bound (most of a 600 MB file at once).
        parquet = pq.ParquetFile(part.path, pre_buffer=False)
        # A few KB of Parquet can hold millions of repeated rows: count them before reading.
        _check_cells(parquet.metadata, part.name, max_cells)
        names = [str(name) for name in parquet.schema_arrow.names]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _bad_parquet(part.name, exc) from exc
    _check_header(names, part.name, max_columns)
    if parquet.metadata.num_rows == 0:
        raise _header_only(part.name)
    return _parquet_rows(parquet, part, widened)


def _parquet_rows(
    parquet: pq.ParquetFile, part: Part, widened: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_pandas_metadata=False):
            batch = pa.RecordBatch.from_arrays(
                batch.columns, names=[str(name) for name in batch.schema.names]
            )
            if widened:
                schema = pa.schema(
                    [pa.field(f.name, widened.get(f.name, f.type)) for f in batch.schema]
                )
                batch = pa.Table.from_batches([batch]).cast(schema).to_batches()[0]
            yield batch
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _bad_parquet(part.name, exc) from exc


def _bad_parquet(filename: str, exc: Exception) -> DataError:
    return DataError(
        f"{filename!r} starts like Parquet but cannot be read ({exc}); write it again "
        "or upload CSV instead",
        field="file",
    )


def _check_cells(metadata: pq.FileMetaData, filename: str, max_cells: int) -> None:
    rows, columns = metadata.num_rows, metadata.num_columns
    if rows * columns > max_cells:
        raise DataError(
            f"{filename!r} holds {rows:,} rows x {columns:,} columns = {rows * columns:,} values, "
            f"more than the limit of {max_cells:,}; upload fewer rows, or raise the limit with "
            "the setting CAUCE_MAX_TABLE_CELLS",
            field="file",
        )


def _text_format(head: bytes, part: Part, max_columns: int, *, recoded: bool) -> _TextFormat:
    """Encoding, delimiter, number format and header, from the first bytes of a text file."""
    encoding = "cp1252" if recoded else _encoding(head, part.name)
    text = _decode_head(head, encoding, part.name)
    _check_printable(text, part.name)
    start = text.lstrip()
    if not start:
        raise DataError(f"{part.name!r} holds only blank space; upload a table with a header row")
    if _JSON_START.match(start):
        raise DataError(
            f"{part.name!r} looks like JSON; cauce reads tables: convert it to CSV "
            "(one header row, one line per example) or Parquet",
            field="file",
        )
    sample = _sample(text)
    delimiter = _sniff(sample)
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"{part.name!r} could not be parsed as CSV ({exc})", field="file") from exc
    names = [name.strip() or f"Unnamed: {i}" for i, name in enumerate(header)]
    _check_header([name.strip() for name in header], part.name, max_columns)
    decimal, thousands = _number_format(sample, delimiter)
    return _TextFormat(encoding, delimiter, decimal, thousands, header, names)


def _encoding(head: bytes, filename: str) -> str:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    # NUL bytes are valid UTF-8 but mean UTF-16 without a BOM, or binary data.
    if b"\x00" not in head[:SNIFF_CHARS] and _try_decode(head, "utf-8") is not None:
        return "utf-8"
    return _guess_encoding(head, filename)


def _decode_head(head: bytes, encoding: str, filename: str) -> str:
    try:
        # Not final: the head may end inside a character.
        return codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except (UnicodeDecodeError, LookupError) as exc:
        raise DataError(
            f"{filename!r} could not be decoded as {encoding} ({exc}); save it as UTF-8 CSV",
            field="file",
        ) from exc


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
        return codecs.getincrementaldecoder(encoding)().decode(data, final=False)
    except UnicodeDecodeError:
        return None


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


def _csv_batches(
    part: Part, fmt: _TextFormat, widened: dict[str, pa.DataType], block_size: int
) -> Iterator[pa.RecordBatch]:
    """The CSV part block by block, each block one batch with the table's column names."""
    yield from _csv_blocks(part, fmt, fmt.encoding, widened, block_size)


def _csv_blocks(
    part: Part,
    fmt: _TextFormat,
    encoding: str,
    widened: dict[str, pa.DataType],
    block_size: int,
) -> Iterator[pa.RecordBatch]:
    invalid: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "error"

    types = {
        raw: widened[name]
        for raw, name in zip(fmt.header, fmt.names, strict=True)
        if name in widened
    }
    options = {
        "read_options": pacsv.ReadOptions(
            encoding=encoding, block_size=block_size, use_threads=False
        ),
        "parse_options": pacsv.ParseOptions(
            delimiter=fmt.delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types=types,
            null_values=NA_VALUES,
            strings_can_be_null=True,
            true_values=["True", "TRUE", "true"],
            false_values=["False", "FALSE", "false"],
            decimal_point=fmt.decimal,
        ),
    }
    try:
        reader = pacsv.open_csv(part.path, **options)
        # pandas leaves dates as text; so does this reader (preprocess decides what they are).
        for raw, field in zip(fmt.header, reader.schema, strict=False):
            if pa.types.is_temporal(field.type) and raw not in types:
                name = fmt.names[fmt.header.index(raw)]
                raise _Restart(name, pa.string())
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            _check_fields(batch, part, fmt)
            yield pa.RecordBatch.from_arrays(batch.columns, names=fmt.names)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if invalid or ("Expected" in message and "columns, got" in message):
            raise _ragged(part, fmt) from exc
        if "straddl" in message:
            raise _Restart(None, None) from exc
        if ("UTF8" in message or "UTF-8" in message) and encoding == "utf-8":
            # UTF-8 at the start, something else further on: Excel on Western Windows.
            raise _Restart(_RECODE + str(part.path), pa.string()) from exc
        conversion = _CONVERSION.search(message)
        if conversion:
            name = fmt.names[int(conversion.group(1))]
            was = conversion.group(2)
            raise _Restart(name, pa.float64() if was in ("null", "int64") else pa.string()) from exc
        raise DataError(
            f"{part.name!r} could not be parsed as CSV ({message})", field="file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{part.name!r} could not be decoded as {encoding} ({exc}); save it as UTF-8 CSV",
            field="file",
        ) from exc


def _check_fields(batch: pa.RecordBatch, part: Part, fmt: _TextFormat) -> None:
    """Fields longer than Python's csv module allowed are refused, as they were before."""
    for column in batch.columns:
        if pa.types.is_string(column.type) and column.null_count < len(column):
            longest = pc.max(pc.utf8_length(column)).as_py()
            if longest is not None and longest > FIELD_LIMIT:
                raise _ragged(part, fmt)


def _ragged(part: Part, fmt: _TextFormat) -> DataError:
    """The error for the first bad row, found by reading the file again with Python's csv module
    (only on this error path), so it names the physical line exactly as before."""
    with open(part.path, encoding=fmt.encoding, newline="", errors="replace") as text:
        reader = csv.reader(text, delimiter=fmt.delimiter)
        try:
            header = next(reader)
            for row in reader:
                if row and len(row) != len(header):
                    return DataError(
                        f"line {reader.line_num} of {part.name!r} has {len(row)} fields but the "
                        f"header has {len(header)}; fix that line (quote values that contain "
                        f"{fmt.delimiter!r}) so every row has the same number of fields",
                        field="file",
                    )
        except csv.Error as exc:
            return DataError(
                f"line {reader.line_num} of {part.name!r} cannot be read ({exc}); fields are "
                f"limited to {FIELD_LIMIT:,} characters and quotes must be closed",
                field="file",
            )
    return DataError(
        f"{part.name!r} has a row with more or fewer fields than its header; fix it so every "
        "row has the same number of fields",
        field="file",
    )


def _pandas_batches(part: Part, fmt: _TextFormat, max_columns: int) -> Iterator[pa.RecordBatch]:
    """A file with thousands separators ("1.234,5"), which pyarrow cannot parse, read whole by
    pandas as before this reader streamed: only for files up to PANDAS_FALLBACK_BYTES."""
    size = part.path.stat().st_size
    if size > PANDAS_FALLBACK_BYTES:
        raise DataError(
            f"{part.name!r} writes numbers with thousands separators (like 1.234,5), which cauce "
            f"reads only in files up to {PANDAS_FALLBACK_BYTES:,} bytes; this one has "
            f"{size:,}: write the numbers without separators (1234,5)",
            field="file",
        )
    with open(part.path, encoding=fmt.encoding, newline="") as file:
        text = file.read()
    _scan_rows(text, part=part, fmt=fmt)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=fmt.delimiter,
            decimal=fmt.decimal,
            thousands=fmt.thousands,
            low_memory=False,  # one dtype per column instead of per chunk
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{part.name!r} could not be parsed as CSV ({exc})", field="file") from exc
    frame.columns = fmt.names
    table = pa.Table.from_pandas(normalise(frame), preserve_index=False)
    yield from table.to_batches(max_chunksize=PARQUET_BATCH_ROWS)


def _scan_rows(text: str, *, part: Part, fmt: _TextFormat) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter)
    try:
        header = next(reader)
        if any(row and len(row) != len(header) for row in reader):
            raise _ragged(part, fmt)
    except csv.Error:
        raise _ragged(part, fmt) from None


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


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
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
