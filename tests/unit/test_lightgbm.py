"""LightGBM as a candidate a spec names: it trains through the usual trials, round-trips through
skops with the allowed types, and exports to ONNX answering as LightGBM does (its float64
thresholds kept), alone, with gaps and text labels, and in a blend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression

from services.deploy.export import export_checked
from services.train.ensemble import voting_model
from services.train.training import make_estimator
from shared.artifacts import dump_model, load_model
from shared.errors import SpecError
from shared.signature import input_signature
from shared.spec import parse_spec, resolve_spec
from tests.datasets import cancer_frame
from tests.unit.test_onnx_precision import close_pairs, fitted, onnx_answers


def churn_like(rows: int = 1500) -> tuple[pd.DataFrame, pd.Series]:
    """Numbers with gaps, a text column and a text label."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, rows).astype(float),
            "charges": rng.normal(70, 30, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
        }
    )
    X.loc[rng.random(rows) < 0.1, "charges"] = np.nan
    churn = (X["charges"].fillna(70) / 100 - X["tenure"] / 72 + rng.normal(0, 0.3, rows)) > 0
    return X, pd.Series(np.where(churn, "yes", "no"), name="churned")


def test_a_spec_may_name_lightgbm_and_tune_its_parameters_but_the_defaults_leave_it_out() -> None:
    spec = parse_spec("models: [{estimator: lightgbm, search: {num_leaves: [8, 31]}}]\n")
    resolved = resolve_spec(spec, target="y", task="classification")
    assert [m.estimator for m in resolved.models or []] == ["lightgbm"]
    defaults = resolve_spec(parse_spec(None), target="y", task="classification")
    assert "lightgbm" not in [m.estimator for m in defaults.models or []]
    with pytest.raises(SpecError) as caught:
        make_estimator("regression", "lightgbm", {"num_leavs": 8})
    assert caught.value.field == "lightgbm.num_leavs"
    model = make_estimator("regression", "lightgbm", {"num_leaves": 8})
    assert isinstance(model, LGBMRegressor) and model.get_params()["n_jobs"] == 1


def test_a_lightgbm_classifier_round_trips_and_exports_answering_as_lightgbm() -> None:
    X, y = churn_like()
    model = fitted(make_estimator("classification", "lightgbm", {"n_estimators": 200}), X, y)
    again = load_model(dump_model(model))  # refused were any of its types not allowed
    assert (again.predict_proba(X) == model.predict_proba(X)).all()
    onnx, check = export_checked(model, X, input_signature(X), classify=True)
    assert onnx is not None and check["passed"], check
    assert check["label_agreement"] == 1.0 and check["max_abs_diff"] < 1e-5
    assert (onnx_answers(onnx, X, classify=True) == model.predict(X)).all()


def test_a_lightgbm_regressor_exports_answering_as_lightgbm() -> None:
    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    model = fitted(LGBMRegressor(n_estimators=300, num_leaves=63, verbose=-1), X, y)
    onnx, check = export_checked(model, X, input_signature(X), classify=False)
    assert onnx is not None and check["passed"], check
    assert np.allclose(onnx_answers(onnx, X, classify=False), model.predict(X), rtol=1e-5)


def test_a_blend_with_lightgbm_exports_answering_as_scikit_learn() -> None:
    frame = cancer_frame()
    X, y = frame.drop(columns="diagnosis"), frame["diagnosis"]
    members = [
        ("lightgbm", LGBMClassifier(n_estimators=100, verbose=-1), 0.6),
        ("logistic", LogisticRegression(max_iter=2000), 0.4),
    ]
    model = fitted(voting_model("classification", members), X, y)
    onnx, check = export_checked(model, X, input_signature(X), classify=True)
    assert onnx is not None and check["passed"], check
    assert (onnx_answers(onnx, X, classify=True) == model.predict(X)).all()


def test_lightgbm_splitting_values_float32_rounds_together_answers_as_lightgbm() -> None:
    # Its thresholds lie between values float32 rounds together: onnxmltools' float32 nodes
    # missed here (the check failed); the float64 nodes answer as LightGBM.
    X, y = close_pairs(600)
    booster = LGBMRegressor(n_estimators=30, min_child_samples=5, verbose=-1)
    model = fitted(booster, X, y)
    onnx, check = export_checked(model, X, input_signature(X), classify=False)
    assert onnx is not None and check["passed"], check
    got = onnx_answers(onnx, X, classify=False)
    # Every row on LightGBM's side of each split (float32 thresholds put some on the other).
    assert np.allclose(got, model.predict(X), rtol=1e-5, atol=1e-4)  # float32 outputs
