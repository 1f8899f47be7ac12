"""The input signature and the coercion of prediction requests to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.errors import RequestError
from shared.signature import coerce_frame, input_signature

SIGNATURE = [
    {"name": "price", "type": "double"},
    {"name": "rooms", "type": "long"},
    {"name": "city", "type": "string"},
    {"name": "garden", "type": "boolean"},
]


def test_input_signature_types() -> None:
    X = pd.DataFrame(
        {
            "price": [1.5, np.nan],
            "rooms": [1, 2],
            "city": pd.Series(["a", None], dtype="str"),
            "garden": [True, False],
            "gappy_flag": pd.Series([True, np.nan], dtype=object),
        }
    )
    assert input_signature(X) == [*SIGNATURE, {"name": "gappy_flag", "type": "boolean"}]


def test_coerce_casts_and_orders_columns() -> None:
    records = [
        {"garden": "true", "city": "Lyon", "rooms": 3.0, "price": "120.5"},
        {"garden": None, "city": 75001, "rooms": None, "price": None},
    ]
    out = coerce_frame(pd.DataFrame(records), SIGNATURE)
    assert list(out.columns) == ["price", "rooms", "city", "garden"]
    assert out["price"].tolist()[0] == 120.5 and np.isnan(out["price"].iloc[1])
    assert out["rooms"].iloc[0] == 3 and np.isnan(out["rooms"].iloc[1])
    assert out["city"].tolist()[:2] == ["Lyon", "75001"]
    assert out["garden"].iloc[0] is True and np.isnan(out["garden"].iloc[1])


def test_coerce_keeps_integer_dtype_without_gaps() -> None:
    frame = pd.DataFrame({"price": [1], "rooms": [2], "city": ["x"], "garden": [False]})
    out = coerce_frame(frame, SIGNATURE)
    assert out["rooms"].dtype == np.int64 and out["garden"].dtype == bool


def base(**changes: object) -> pd.DataFrame:
    row = {"price": 1.0, "rooms": 2, "city": "x", "garden": True} | changes
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("frame", "field", "fragment"),
    [
        (base().drop(columns="city"), "city", "missing column 'city'"),
        (base(colour="red"), "colour", "unknown column 'colour'"),
        (base(price="cheap"), "price", "expects a number"),
        (base(price=True), "price", "expects a number"),
        (base(rooms=2.5), "rooms", "expects an integer"),
        (base(garden="maybe"), "garden", "true or false"),
        (base(city=["a", "b"]), "city", "expects text"),
    ],
)
def test_coerce_errors_name_the_field(frame: pd.DataFrame, field: str, fragment: str) -> None:
    with pytest.raises(RequestError) as caught:
        coerce_frame(frame, SIGNATURE)
    assert caught.value.field == field
    assert fragment in str(caught.value)
    assert caught.value.status == 400
