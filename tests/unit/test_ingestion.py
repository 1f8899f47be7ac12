"""Target resolution, task inference, validation and profiling on small hand-made frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from services.ingest.ingestion import (
    check_guessed_target,
    empty_columns,
    infer_task,
    profile_table,
    resolve_target,
    validate_table,
)
from shared.errors import DataError


def test_resolve_target() -> None:
    df = pd.DataFrame(columns=["x", "Label", "z"])
    assert resolve_target(df, None) == "Label"
    assert resolve_target(pd.DataFrame(columns=["x", "z"]), None) == "z"
    assert resolve_target(df, "x") == "x"
    with pytest.raises(DataError, match=r"'price' is not in the table.*'x', 'Label', 'z'"):
        resolve_target(df, "price")


def test_infer_task() -> None:
    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([True, False])) == "classification"
    assert infer_task(pd.Series([0, 1] * 5)) == "classification"
    assert infer_task(pd.Series([1, 2, 3] * 100)) == "classification"
    assert infer_task(pd.Series(range(100))) == "regression"
    assert infer_task(pd.Series([0.5, 1.5] * 50)) == "regression"
    assert infer_task(pd.Series([1, 2, 3, 4] * 5)) == "regression"


def frame(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x": rng.normal(size=n), "empty": [None] * n, "y": ["a", "b", "c"] * (n // 3)}
    )


def test_validate_drops_empty_columns_and_unlabelled_rows() -> None:
    df = frame()
    df.loc[0, "y"] = None
    assert empty_columns(df, target="y") == ["empty"]
    clean = validate_table(df, target="y", task="classification")
    assert list(clean.columns) == ["x", "y"]
    assert len(clean) == 29


@pytest.mark.parametrize(
    ("change", "task", "fragments"),
    [
        (lambda df: df.head(10), "classification", ("10 rows", "at least 20")),
        (lambda df: df.assign(y=None), "classification", ("has no values",)),
        (lambda df: df.assign(y="a"), "classification", ("single class", "'a'")),
        (lambda df: df.assign(y=7.0), "regression", ("constant",)),
        (lambda df: df.assign(y=["a"] * 29 + ["b"]), "classification", ("class 'b'", "1 row")),
        (lambda df: df[["y"]], "classification", ("no feature columns",)),
        (lambda df: df[["empty", "y"]], "classification", ("no feature columns",)),
        (
            lambda df: df.assign(y=[str(i) for i in range(11)] + ["abc"] + ["1"] * 18),
            "regression",
            ("text in a numeric column", "row 12: 'abc'"),
        ),
    ],
)
def test_validate_rejects(change: object, task: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(DataError) as caught:
        validate_table(change(frame()), target="y", task=task)  # type: ignore[operator]
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_validate_regression_accepts_numeric_text() -> None:
    df = frame().assign(y=[str(i) for i in range(30)])
    assert validate_table(df, target="y", task="regression")["y"].dtype == np.float64


def test_validate_turns_float_labels_with_gaps_into_integers() -> None:
    df = pd.concat([frame(), frame()]).assign(y=[0.0, 1.0, None] * 20)
    clean = validate_table(df, target="y", task="classification")
    assert clean["y"].dtype == np.int64


def test_profile_is_json_ready() -> None:
    df = pd.DataFrame(
        {
            "n": [1.0, None, 3.0],
            "i": [1, 2, 2],
            "s": pd.Series(["a", "a", None], dtype="str"),
            "b": [True, False, True],
            "one": [5.0, None, None],
        }
    )
    profile = profile_table(df)
    json.dumps(profile, allow_nan=False)
    assert profile["schema"] == {
        "n": "number",
        "i": "integer",
        "s": "string",
        "b": "boolean",
        "one": "number",
    }
    assert profile["columns"]["n"] == {
        "count": 2, "missing": 1, "distinct": 2, "min": 1.0, "max": 3.0, "mean": 2.0,
        "std": pytest.approx(1.41421356),
    }  # fmt: skip
    assert profile["columns"]["one"]["std"] is None
    assert profile["columns"]["s"]["top"] == [{"value": "a", "count": 2}]


ROWS = 60
DATES = pd.Series(pd.date_range("2021-01-01", periods=ROWS).strftime("%Y-%m-%d"), name="list_date")


@pytest.mark.parametrize(
    ("y", "task", "says"),
    [
        (DATES, "classification", "holds dates"),
        (pd.Series(range(1000, 1000 + ROWS), name="customer_id"), "regression", "an id"),
        (pd.Series([f"c{i}" for i in range(ROWS)], name="name"), "classification", "100%"),
    ],
)
def test_a_guessed_target_that_looks_wrong_is_refused(y: pd.Series, task: str, says: str) -> None:
    with pytest.raises(DataError) as caught:
        check_guessed_target(y, task=task)
    assert says in str(caught.value)
    assert f"{y.name!r} was guessed as the target" in str(caught.value)
    assert str(caught.value).endswith("set the target with --target or in the spec")
    assert caught.value.field == "target"


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (pd.Series([1, 2, 3, 4, 5] * 12, name="bedrooms"), "classification"),
        (pd.Series(np.linspace(1e5, 9e5, ROWS), name="price"), "regression"),
        (pd.Series(range(ROWS), name="paid"), "regression"),
        (pd.Series(["yes", "no"] * 30, name="churned"), "classification"),
    ],
)
def test_a_guessed_target_that_looks_right_is_kept(y: pd.Series, task: str) -> None:
    check_guessed_target(y, task=task)
