"""The input signature that training records (requests are checked against it in test_columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.signature import input_signature

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
