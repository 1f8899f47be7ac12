"""Model archives: every candidate round-trips through skops; anything else is refused."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from services.preprocess.features import build_transformer
from services.train.training import CANDIDATES, fit_model
from shared.artifacts import dump_model, load_model
from shared.errors import DataError


def table(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "count": rng.integers(0, 9, n),
            "color": pd.Series(rng.choice(["red", "blue", np.nan], n), dtype="str"),
            "code": pd.Series([f"c{i % 25}" for i in range(n)], dtype="str"),
            "flag": rng.choice([True, False], n),
        }
    )


TARGETS = {
    "classification": pd.Series(["a", "b", "c", "d"] * 20, dtype="str"),
    "regression": pd.Series(np.linspace(0, 1, 80)),
}


@pytest.mark.parametrize(
    ("task", "estimator"), [(task, name) for task in CANDIDATES for name in CANDIDATES[task]]
)
def test_every_candidate_round_trips(task: str, estimator: str) -> None:
    X, y = table(), TARGETS[task]
    model = fit_model(
        transformer=build_transformer(X).fit(X), task=task, estimator=estimator, params={},
        X=X, y=y,
    )  # fmt: skip
    loaded = load_model(dump_model(model))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


class Sneaky:
    def __init__(self) -> None:
        self.payload = "rm -rf /"


def test_dump_refuses_types_outside_the_allow_list() -> None:
    with pytest.raises(ValueError, match="Sneaky"):
        dump_model({"model": Sneaky()})


def test_dump_refuses_an_arbitrary_function_inside_a_pipeline() -> None:
    step = FunctionTransformer(table).fit(np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"test_artifacts\.table"):
        dump_model(step)


def test_load_refuses_untrusted_types_by_name() -> None:
    with pytest.raises(DataError, match="Sneaky"):
        load_model(sio.dumps(Sneaky()))


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x05\x06" + b"\x00" * 18])
def test_load_refuses_non_archives(data: bytes) -> None:
    with pytest.raises(DataError, match="model file"):
        load_model(data)


def test_load_refuses_a_zip_without_a_schema() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.pkl", b"\x80\x04")
    with pytest.raises(DataError, match="not a skops archive"):
        load_model(buffer.getvalue())
