"""The ONNX export answers as scikit-learn does where float32 cannot: a histogram booster's
splits between values that float32 rounds together, and blends whose members each need their
own precision (forests in float32, boosting in float64) and whose labels are text or numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from services.deploy.export import export_checked
from services.preprocess.features import build_transformer
from services.train.ensemble import voting_model
from shared.columns import CompiledSignature
from shared.runtime import OnnxScorer
from shared.signature import input_signature


def fitted(estimator: object, X: pd.DataFrame, y: pd.Series) -> Pipeline:
    features = build_transformer(X).fit(X)
    return Pipeline([("features", features), ("model", estimator.fit(features.transform(X), y))])


def close_pairs(rows: int) -> tuple[pd.DataFrame, pd.Series]:
    """`dose` takes values in pairs one float64 step apart (float32 cannot tell them apart), and
    the target jumps between the two members of each pair."""
    rng = np.random.default_rng(0)
    base = rng.choice(np.linspace(1.0, 2.0, 6), rows)
    upper = rng.random(rows) < 0.5
    dose = np.where(upper, np.nextafter(base, 3.0), base)
    X = pd.DataFrame({"dose": dose, "noise": rng.normal(size=rows)})
    return X, pd.Series(np.where(upper, 100.0, 0.0) + base, name="effect")


def onnx_answers(onnx: bytes, X: pd.DataFrame, *, classify: bool) -> np.ndarray:
    compiled = CompiledSignature.compile(input_signature(X))
    columns = compiled.check({name: X[name].tolist() for name in compiled.names})
    return OnnxScorer(onnx, classify=classify).score(columns).predictions


def test_a_booster_splitting_values_float32_rounds_together_answers_as_scikit_learn() -> None:
    X, y = close_pairs(600)
    assert (X["dose"].astype(np.float32).nunique()) < X["dose"].nunique()
    model = fitted(HistGradientBoostingRegressor(max_iter=30), X, y)
    onnx, check = export_checked(model, X, input_signature(X), classify=False)
    assert onnx is not None and check["passed"], check
    got = onnx_answers(onnx, X, classify=False)
    assert np.allclose(got, model.predict(X), rtol=1e-5)
    # the upper member of a pair gets the upper answer, which float32 features could not give
    assert np.all(got[y.to_numpy() > 50] > 50) and np.all(got[y.to_numpy() < 50] < 50)


def regression_blend() -> object:
    members = [
        ("ridge", Ridge(), 0.4),
        ("forest", RandomForestRegressor(n_estimators=20, random_state=0), 0.35),
        ("boosting", HistGradientBoostingRegressor(max_iter=40, learning_rate=0.05), 0.25),
    ]
    return voting_model("regression", members)


def test_a_regression_blend_of_three_families_exports_and_answers_as_scikit_learn() -> None:
    X, y = close_pairs(600)
    model = fitted(regression_blend(), X, y)
    onnx, check = export_checked(model, X, input_signature(X), classify=False)
    assert onnx is not None and check["passed"], check
    assert np.allclose(onnx_answers(onnx, X, classify=False), model.predict(X), rtol=1e-5)


@pytest.mark.parametrize(
    "labels", [["low", "high"], [3, 7], [0, 1, 2]], ids=["text", "numbers", "three-classes"]
)
def test_a_classification_blend_exports_with_its_own_labels(labels: list[object]) -> None:
    X, y = close_pairs(600)
    bins = np.digitize(y.to_numpy(), [50.0, 101.5][: len(labels) - 1])
    target = pd.Series(np.array(labels, dtype=object)[bins]).astype(type(labels[0]))
    members = [
        ("logistic", LogisticRegression(max_iter=1000), 0.2),
        ("forest", RandomForestClassifier(n_estimators=20, random_state=0), 0.3),
        ("boosting", HistGradientBoostingClassifier(max_iter=40), 0.5),
    ]
    model = fitted(voting_model("classification", members), X, target)
    onnx, check = export_checked(model, X, input_signature(X), classify=True)
    assert onnx is not None and check["passed"], check
    assert check["label_agreement"] == 1.0 and check["max_abs_diff"] < 1e-5
    got = onnx_answers(onnx, X, classify=True)
    assert [str(v) for v in got] == [str(v) for v in model.predict(X)]
    assert {str(v) for v in got} == {str(v) for v in labels}
