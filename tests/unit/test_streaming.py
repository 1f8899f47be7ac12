"""The streamed reader: a CSV read in many small blocks gives the same table, profile and errors
as the same CSV read in one block (which is what the reader did before it streamed)."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.ingest.ingestion import Profiler, profile_table
from services.ingest.reading import Part, read_table, stream_table
from shared.errors import DataError

WHOLE = 1 << 24  # every file here fits in one block of this size
TINY = 64  # a few rows a block


def _rows(n: int, make: object) -> str:
    return "".join(make(i) for i in range(n))  # type: ignore[operator]


# Each file turns in its last rows: a column changes type, or a row is bad, far from the start.
FILES = {
    "ints then a float": "a,b,label\n"
    + _rows(200, lambda i: f"{i},{i % 7},{'yes' if i % 3 else 'no'}\n")
    + "2.5,1,yes\n",
    "numbers then text": "a,b,label\n"
    + _rows(200, lambda i: f"{i * 0.5},{i},x\n")
    + "n/a-ish,3,y\n",
    "gaps": "a,b,c,label\n"
    + _rows(150, lambda i: f",{i if i % 5 else ''},,{i % 2}\n")
    + "7,8,,1\n"
    + "NA,9,,0\n",
    "a column empty until the end": "a,b\n" + _rows(300, lambda i: f"{i},\n") + "1,late text\n",
    "decimal comma": "precio;cantidad;nombre\n"
    + _rows(200, lambda i: f"{i},5;{i};art {i}\n")
    + "3,25;1;último\n",
    "quoted delimiters and newlines": "name,note,n\n"
    + _rows(200, lambda i: f'"Smith, J{i}","line one\nline two",{i}\n'),
    "booleans and dates": "when,flag,v\n"
    + _rows(200, lambda i: f"2024-01-{1 + i % 28:02d},{'true' if i % 2 else 'false'},{i}\n")
    + "not a date,,1\n",
}

BAD = {
    "ragged line late": (
        "a,b,c\n" + _rows(300, lambda i: f"{i},{i},{i}\n") + "1,2\n",
        ("line 302", "2 fields", "header has 3"),
    ),
    "long line late": (
        "a,b,c\n" + _rows(300, lambda i: f"{i},{i},{i}\n") + "1,2,3,4\n",
        ("line 302", "4 fields"),
    ),
    "oversized field late": (
        "a,b\n" + _rows(300, lambda i: f"{i},x\n") + '1,"' + "y" * 140_000 + '"\n',
        ("line 302", "characters"),
    ),
}


@pytest.mark.parametrize("name", FILES)
def test_a_csv_in_many_blocks_reads_as_in_one(name: str) -> None:
    data = FILES[name].encode()
    whole = read_table(data, filename="up.csv", block_size=WHOLE)
    streamed = read_table(data, filename="up.csv", block_size=TINY)
    pd.testing.assert_frame_equal(streamed, whole)
    assert _rounded(_profile(data, TINY)) == _rounded(_profile(data, WHOLE))


def test_types_widen_as_pandas_would() -> None:
    frames = {name: read_table(FILES[name].encode(), filename="up.csv", block_size=TINY)
              for name in FILES}  # fmt: skip
    assert frames["ints then a float"]["a"].dtype == np.float64
    assert frames["ints then a float"]["b"].dtype == np.int64
    assert frames["numbers then text"]["a"].dtype == "str"
    assert frames["a column empty until the end"]["b"].iloc[-1] == "late text"
    assert frames["decimal comma"]["precio"].iloc[1] == 1.5
    assert frames["decimal comma"]["precio"].iloc[-1] == 3.25
    assert frames["quoted delimiters and newlines"]["name"].iloc[0] == "Smith, J0"
    assert frames["booleans and dates"]["when"].dtype == "str"  # dates stay text, as in pandas
    gaps = frames["gaps"]
    assert gaps["c"].isna().all() and gaps["c"].dtype == np.float64
    assert gaps["a"].tolist()[-2:][0] == 7.0 and np.isnan(gaps["a"].iloc[-1])


@pytest.mark.parametrize("name", BAD)
def test_bad_rows_late_in_the_file_give_the_same_error_in_any_block_size(name: str) -> None:
    data, fragments = BAD[name]
    messages = []
    for block_size in (TINY, WHOLE):
        with pytest.raises(DataError) as caught:
            read_table(data.encode(), filename="up.csv", block_size=block_size)
        messages.append(str(caught.value))
        for fragment in fragments:
            assert fragment in str(caught.value)
    assert messages[0] == messages[1]


def test_incremental_profile_matches_the_whole_frame_profile() -> None:
    data = FILES["gaps"].encode()
    frame = read_table(data, filename="up.csv", block_size=WHOLE)
    expected = profile_table(frame)
    got = _profile(data, TINY)
    assert got["rows"] == expected["rows"]
    assert got["schema"] == expected["schema"]
    for column, stats in expected["columns"].items():
        for key, value in stats.items():
            assert got["columns"][column][key] == (
                pytest.approx(value) if isinstance(value, float) else value
            ), (column, key)


def test_profile_of_text_and_numbers_matches_pandas() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=5000),
            "n": rng.integers(0, 50, size=5000),
            "t": rng.choice(["red", "green", "blue", "cyan", "plum", "teal", "gold"], 5000),
        }
    )
    data = frame.to_csv(index=False).encode()
    expected = profile_table(read_table(data, filename="up.csv"))
    got = _profile(data, 4096)
    assert got["schema"] == expected["schema"]
    for column in ("x", "n"):
        for key in ("count", "missing", "distinct", "min", "max", "mean", "std"):
            assert got["columns"][column][key] == pytest.approx(expected["columns"][column][key])
    assert got["columns"]["t"] == expected["columns"]["t"]


def test_distinct_is_estimated_past_the_bound_and_says_so() -> None:
    profiler = Profiler()
    frame = pd.DataFrame({"id": np.arange(200_000, dtype=float)})
    for start in range(0, 200_000, 50_000):
        profiler(
            pa.RecordBatch.from_pandas(frame.iloc[start : start + 50_000], preserve_index=False)
        )
    stats = profiler.result()["columns"]["id"]
    assert stats["estimated"] == ["distinct"]
    assert 180_000 < stats["distinct"] < 220_000


def test_gzip_is_inflated_as_a_stream_and_reads_the_same() -> None:
    data = FILES["ints then a float"].encode()
    pd.testing.assert_frame_equal(
        read_table(gzip.compress(data), filename="up.csv.gz", block_size=TINY),
        read_table(data, filename="up.csv", block_size=WHOLE),
    )


def test_too_little_disk_for_the_inflated_file_names_sizes_directory_and_tmpdir(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(FILES["gaps"].encode()))
    with pytest.raises(DataError) as caught:
        stream_table([Part(source, "in.csv.gz")], tmp_path / "out.parquet", reserve_bytes=1 << 62)
    message = str(caught.value)
    assert "in the temporary directory" in message and str(tmp_path) in message
    assert "free" in message and "TMPDIR" in message


def test_parts_are_read_in_order_into_one_table(tmp_path: Path) -> None:
    first, second = tmp_path / "p1.csv", tmp_path / "p2.parquet"
    first.write_text("a,b\n1,x\n2,y\n")
    pd.DataFrame({"b": ["z"], "a": [3.5]}).to_parquet(second)  # other order, wider type
    stream_table([Part(first, "p1.csv"), Part(second, "p2.parquet")], tmp_path / "o.parquet")
    frame = pq.read_table(tmp_path / "o.parquet").to_pandas()
    assert frame.to_dict("list") == {"a": [1.0, 2.0, 3.5], "b": ["x", "y", "z"]}


def test_a_part_with_other_columns_is_named(tmp_path: Path) -> None:
    first, second = tmp_path / "p1.csv", tmp_path / "p2.csv"
    first.write_text("a,b\n1,x\n")
    second.write_text("a,c\n2,y\n")
    with pytest.raises(DataError) as caught:
        stream_table([Part(first, "p1.csv"), Part(second, "p2.csv")], tmp_path / "o.parquet")
    message = str(caught.value)
    assert "part 2 ('p2.csv')" in message and "lacks 'b'" in message and "'c'" in message


def _rounded(value: object) -> object:
    """The profile with floats to 10 significant digits (sums in another order differ after)."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _profile(data: bytes, block_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        source.write_bytes(data)
        profilers: list[Profiler] = []

        def fresh() -> Profiler:
            profilers.append(Profiler())
            return profilers[-1]

        stream_table(
            [Part(source, "in.csv")], Path(tmp) / "o.parquet", block_size=block_size, on_batch=fresh
        )
        return profilers[-1].result()
