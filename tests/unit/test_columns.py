"""Request columns checked against a compiled signature: casts, order, and the error that names
the column (what the prediction service answers with a 400 and batch scoring fails a run with)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.columns import CompiledSignature
from shared.errors import RequestError
from shared.runtime import frame

SIGNATURE = CompiledSignature.compile(
    [
        {"name": "price", "type": "double"},
        {"name": "rooms", "type": "long"},
        {"name": "city", "type": "string"},
        {"name": "garden", "type": "boolean"},
    ]
)


def test_casts_and_orders_columns() -> None:
    columns = {
        "garden": ["true", None],
        "city": ["Lyon", 75001],
        "rooms": [3.0, None],
        "price": ["120.5", None],
    }
    out = frame(SIGNATURE.check(columns))  # the frame a scikit-learn pipeline is given
    assert list(out.columns) == ["price", "rooms", "city", "garden"]
    assert out["price"].tolist()[0] == 120.5 and np.isnan(out["price"].iloc[1])
    assert out["rooms"].iloc[0] == 3 and np.isnan(out["rooms"].iloc[1])
    assert out["city"].tolist()[0] == "Lyon" and out["city"].tolist()[1] == "75001"
    assert out["garden"].iloc[0] is True and np.isnan(out["garden"].iloc[1])


def test_keeps_integer_dtype_without_gaps() -> None:
    out = frame(SIGNATURE.check({"price": [1], "rooms": [2], "city": ["x"], "garden": [False]}))
    assert out["rooms"].dtype == np.int64 and out["garden"].dtype == bool


def base(**changes: Any) -> dict[str, list[Any]]:
    row = {"price": 1.0, "rooms": 2, "city": "x", "garden": True} | changes
    return {name: [value] for name, value in row.items()}


def without(name: str) -> dict[str, list[Any]]:
    return {key: value for key, value in base().items() if key != name}


@pytest.mark.parametrize(
    ("columns", "field", "fragment"),
    [
        (without("city"), "city", "missing column 'city'"),
        (base(colour="red"), "colour", "unknown column 'colour'"),
        (base(price="cheap"), "price", "expects a number"),
        (base(price="inf"), "price", "expects a number"),
        (base(price=True), "price", "expects a number"),
        (base(rooms=2.5), "rooms", "expects an integer"),
        (base(garden="maybe"), "garden", "true or false"),
        (base(garden=1), "garden", "true or false"),
        (base(city=["a", "b"]), "city", "expects text"),
        (base(city=True), "city", "expects text"),
    ],
)
def test_errors_name_the_field(columns: dict[str, list[Any]], field: str, fragment: str) -> None:
    with pytest.raises(RequestError) as caught:
        SIGNATURE.check(columns)
    assert caught.value.field == field
    assert fragment in str(caught.value)
    assert caught.value.status == 400


def test_messages_name_the_row_and_what_to_send() -> None:
    with pytest.raises(RequestError) as wrong:
        SIGNATURE.check(base_of(3) | {"rooms": [1, 2.5, None]})
    assert str(wrong.value) == (
        "column 'rooms' expects an integer, but row 1 has 2.5; "
        "send an integer or null for missing values"
    )
    with pytest.raises(RequestError) as missing:
        SIGNATURE.check(without("price"))
    listed = "price, rooms, city, garden"
    assert str(missing.value) == f"missing column 'price'; the model expects: {listed}"


def base_of(rows: int) -> dict[str, list[Any]]:
    return {"price": [1.0] * rows, "city": ["x"] * rows, "garden": [True] * rows}


def test_a_bad_value_is_reported_without_importing_pandas() -> None:
    # The serving processes keep pandas out of memory (tests/integration/test_serve_fast.py);
    # the message for a bad value must not bring it in either.
    code = (
        "import sys\n"
        "from shared.columns import CompiledSignature\n"
        "sig = CompiledSignature.compile([{'name': 'n', 'type': 'long'}])\n"
        "try:\n"
        "    sig.check({'n': [1, 'many']})\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
        "print('pandas' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.splitlines() == [
        "column 'n' expects a number, but row 1 has 'many'; "
        "send a number or null for missing values",
        "False",
    ]
