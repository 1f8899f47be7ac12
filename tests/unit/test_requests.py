"""Prediction request bodies parsed into columns (services/serve/predict.py, v2.py): hostile
shapes are refused with the field named, in time linear in the body."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from services.serve import v2
from services.serve.predict import MAX_ROWS, decode_body, parse_mlflow, read_csv
from shared.columns import CompiledSignature
from shared.errors import RequestError

COLUMNS = ["price", "rooms", "city"]
RECORD = {"price": 1.0, "rooms": 2, "city": "Lyon"}


def refused(payload: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_mlflow(payload, COLUMNS)
    return caught.value


def test_records_with_a_key_each_are_refused_at_the_first_unknown() -> None:
    # Each record with its own key once cost rows x keys (8,000 records: 2.2 s, 513 MB).
    records = [{**RECORD, f"k{i}": i} for i in range(2000)]
    error = refused({"dataframe_records": records})
    assert error.status == 400 and error.field == "k0"
    assert "unknown column 'k0'" in str(error)


def test_records_missing_keys_in_some_rows_are_gaps() -> None:
    columns = parse_mlflow([RECORD, {"price": 2.0, "rooms": 3}], COLUMNS)
    assert columns == {"price": [1.0, 2.0], "rooms": [2, 3], "city": ["Lyon", None]}


def test_split_with_many_columns_is_refused_at_the_first_unknown() -> None:
    names = [*COLUMNS, *(f"c{i}" for i in range(20_000)), "price"]
    error = refused({"dataframe_split": {"columns": names, "data": [[0] * len(names)]}})
    assert error.status == 400 and error.field == "c0"


def test_split_with_a_repeated_column_names_it() -> None:
    error = refused({"dataframe_split": {"columns": [*COLUMNS, "rooms"], "data": [[1, 2, 3, 4]]}})
    assert error.field == "rooms" and "appears twice" in str(error)


def test_csv_header_is_checked_against_the_model() -> None:
    with pytest.raises(RequestError) as caught:
        read_csv(b"price,rooms,city,colour\n1,2,x,red\n", COLUMNS)
    assert caught.value.field == "colour"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"dataframe_records": [RECORD] * (MAX_ROWS + 1)}, "dataframe_records"),
        ({"dataframe_split": {"data": [[1.0, 2, "x"]] * (MAX_ROWS + 1)}}, "dataframe_split.data"),
        ({"instances": [[1.0, 2, "x"]] * (MAX_ROWS + 1)}, "instances"),
        ({"inputs": {name: [None] * (MAX_ROWS + 1) for name in COLUMNS}}, "inputs"),
    ],
    ids=["records", "split", "instances", "inputs"],
)
def test_more_rows_than_the_limit_get_413(payload: dict[str, Any], field: str) -> None:
    error = refused(payload)
    assert error.status == 413 and error.field == field
    assert f"at most {MAX_ROWS:,}" in str(error)


def test_v2_rows_over_the_limit_get_413() -> None:
    tensor = {"name": "x", "shape": [MAX_ROWS + 1, 3], "datatype": "FP64"}
    with pytest.raises(RequestError) as caught:
        v2.parse_infer({"inputs": [{**tensor, "data": [0.0] * (3 * MAX_ROWS + 3)}]}, COLUMNS)
    assert caught.value.status == 413


def test_v2_unknown_tensor_is_refused_before_its_shape() -> None:
    tensors = [
        {"name": f"t{i}", "shape": [i + 1], "datatype": "FP64", "data": [0.0] * (i + 1)}
        for i in range(3)
    ]
    with pytest.raises(RequestError) as caught:
        v2.parse_infer({"inputs": tensors}, COLUMNS)
    assert caught.value.field == "t0"


def test_v2_data_nested_990_deep_is_a_400_naming_it() -> None:
    # Once a 500: RecursionError.
    data: list[Any] = [1.0]
    for _ in range(990):
        data = [data]
    tensor = {"name": "price", "shape": [1], "datatype": "FP64", "data": data}
    with pytest.raises(RequestError) as caught:
        v2.parse_infer({"inputs": [tensor]}, COLUMNS)
    assert caught.value.status == 400 and caught.value.field == "inputs[0].data"
    assert "nested more than 32 lists deep" in str(caught.value)


def test_a_huge_unknown_name_is_cut_in_the_error() -> None:
    # A 5 MB name was echoed twice into a 10 MB error body.
    name = "n" * 5_000_000
    with pytest.raises(RequestError) as caught:
        parse_mlflow([{**RECORD, name: 1}], COLUMNS)
    with pytest.raises(RequestError) as checked:
        CompiledSignature.compile([{"name": c, "type": "string"} for c in COLUMNS]).check(
            {**{c: ["x"] for c in COLUMNS}, name: [1]}
        )
    for error in (caught.value, checked.value):
        assert len(str(error)) < 200 and len(error.field or "") <= 80
        assert "'" + "n" * 79 + "…'" in str(error)


def test_a_bad_value_deeply_nested_is_named_without_its_repr() -> None:
    value: list[Any] = []
    for _ in range(990):
        value = [value]
    signature = CompiledSignature.compile([{"name": "price", "type": "double"}])
    with pytest.raises(RequestError) as caught:
        signature.check({"price": [value]})
    assert "row 0 has a list of 1" in str(caught.value)


def test_a_gzip_body_is_decoded_within_the_limit() -> None:
    body = b'{"instances": [[1.0, 2, "x"]]}'
    assert decode_body(gzip.compress(body), "gzip", max_bytes=1000) == body
    assert decode_body(body, "", max_bytes=1000) == body
    with pytest.raises(RequestError) as bomb:
        decode_body(gzip.compress(b" " * 10_000_000), "gzip", max_bytes=1000)
    assert bomb.value.status == 413 and "once decompressed" in str(bomb.value)
    with pytest.raises(RequestError) as other:
        decode_body(body, "br", max_bytes=1000)
    assert other.value.status == 415 and other.value.field == "Content-Encoding"
    with pytest.raises(RequestError) as damaged:
        decode_body(body, "gzip", max_bytes=1000)
    assert damaged.value.status == 400 and damaged.value.field == "Content-Encoding"
