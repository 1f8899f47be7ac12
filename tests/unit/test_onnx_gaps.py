"""The ONNX export of pipelines fitted on tables with gaps: numbers imputed with the median, text
and flags with the most frequent value, both as scikit-learn does them, so the parity check
passes and onnxruntime answers rows with missing values as scikit-learn does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from services.deploy.export import export_checked
from services.preprocess.features import build_transformer
from shared.columns import CompiledSignature
from shared.registry import serving_runtime
from shared.runtime import OnnxScorer
from shared.signature import input_signature


def gappy(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Numbers, text (one-hot and, with 25 values, ordinal) and flags, each missing about one
    value in eight, and a target that leans hard on the most frequent region."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"area": rng.normal(90, 30, rows), "rooms": rng.integers(1, 7, rows) * 1.0})
    X["region"] = pd.Series(rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]))
    X["street"] = pd.Series(rng.choice([f"s{i}" for i in range(25)], rows))
    X["garden"] = pd.Series(rng.choice([True, False], rows), dtype=object)
    y = 1000 * X["area"] + 5000 * X["rooms"] + 60000 * (X["region"] == "north") + X["garden"] * 2e4
    for name in X.columns:
        X[name] = X[name].where(rng.random(rows) > 0.12, np.nan)
    X = X.astype({"region": "str", "street": "str"})
    return X, pd.Series(y.astype(float), name="price")


def fitted(estimator: BaseEstimator, X: pd.DataFrame, y: pd.Series) -> Pipeline:
    """The features transformer preprocess builds, then the estimator, as train fits them."""
    features = build_transformer(X).fit(X)
    return Pipeline([("features", features), ("model", estimator.fit(features.transform(X), y))])


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, pd.Series]:
    return gappy(400, seed=1)


@pytest.mark.parametrize(
    "estimator",
    [
        Ridge(),
        HistGradientBoostingRegressor(max_iter=50),
        RandomForestRegressor(n_estimators=20, random_state=0),
    ],
    ids=["ridge", "boosting", "forest"],
)
def test_a_regressor_fitted_on_gaps_exports_and_passes_parity(
    table: Any, estimator: BaseEstimator
) -> None:
    X, y = table
    model = fitted(estimator, X, y)
    test, _ = gappy(200, seed=2)
    onnx, check = export_checked(model, test, input_signature(X), classify=False)
    assert onnx is not None and check["passed"], check
    assert check["rows"] == 200 and check["max_abs_diff"] < 0.05  # prices in the 100,000s


@pytest.mark.parametrize(
    "estimator",
    [LogisticRegression(max_iter=2000), HistGradientBoostingClassifier(max_iter=50)],
    ids=["logistic", "boosting"],
)
def test_a_classifier_fitted_on_gaps_exports_and_passes_parity(
    table: Any, estimator: BaseEstimator
) -> None:
    X, y = table
    model = fitted(estimator, X, pd.Series(np.where(y > y.median(), "high", "low")))
    test, _ = gappy(200, seed=3)
    onnx, check = export_checked(model, test, input_signature(X), classify=True)
    assert onnx is not None and check["passed"], check
    assert check["label_agreement"] == 1.0 and check["max_abs_diff"] < 1e-5


def test_rows_with_nulls_are_answered_as_scikit_learn_answers_them(table: Any) -> None:
    X, y = table
    model = fitted(Ridge(), X, y)
    onnx, _ = export_checked(model, X, input_signature(X), classify=False)
    assert onnx is not None
    # As a JSON body arrives: None wherever a value is missing, whole rows of them too.
    columns = {
        "area": [None, 120.5, 75.0, None],
        "rooms": [3, None, 2, None],
        "region": ["north", "south", None, None],
        "street": ["s1", None, "s3", None],
        "garden": [True, False, None, None],
    }
    checked = CompiledSignature.compile(input_signature(X)).check(columns)
    got = OnnxScorer(onnx, classify=False).score(checked).predictions
    frame = pd.DataFrame(columns).astype({"area": float, "rooms": float, "region": "str"})
    frame = frame.astype({"street": "str"}).assign(garden=[True, False, np.nan, np.nan])
    assert np.allclose(got, model.predict(frame), rtol=1e-6)
    # the gap in region takes north, the most frequent, worth 60,000 here
    north = frame.assign(region=["north"] * 4)
    assert np.allclose(got[2:], model.predict(north)[2:], rtol=1e-6)


def test_a_version_says_which_runtime_serves_it_and_why() -> None:
    kept = {"passed": True, "rows": 80, "max_abs_diff": 1e-7, "file": "model.onnx"}
    assert serving_runtime({"onnx": kept}) == {"runtime": "onnx", "runtime_reason": None}
    failed = {"passed": False, "rows": 80, "tolerance": 1e-4, "max_abs_diff": 5397.2}
    failed |= {"label_agreement": 1.0, "file": None}
    slow = serving_runtime({"onnx": failed})
    assert slow["runtime"] == "skops"
    assert slow["runtime_reason"] == (
        "the ONNX export did not answer as scikit-learn on 80 test rows: max_abs_diff 5397 "
        "(tolerance 0.0001 relative), labels agree on 100.00%"
    )
    refused = {"passed": False, "reason": "MissingShapeCalculator: no converter", "file": None}
    assert serving_runtime({"onnx": refused})["runtime_reason"] == (
        "no ONNX export: MissingShapeCalculator: no converter"
    )
    assert serving_runtime({})["runtime_reason"] == "registered before deploy exported ONNX"
    recorded = {"onnx": failed, "runtime": "skops", "runtime_reason": "as deploy said"}
    assert serving_runtime(recorded)["runtime_reason"] == "as deploy said"
