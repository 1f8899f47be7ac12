"""LightGBM as a default candidate: it trains through the usual trials, round-trips through
skops with the allowed types, and exports to ONNX answering as LightGBM does (its float64
thresholds kept), alone, with gaps and text labels, and in a blend. On many rows a trial stops
adding trees early, and the refit keeps as many trees as the trial did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.linear_model import LogisticRegression

from services.deploy.export import export_checked
from services.preprocess.features import build_transformer
from services.train.ensemble import voting_model
from services.train.training import (
    LIGHTGBM_MAX_TREES,
    fit_model,
    make_estimator,
    refit_params,
    run_trial,
)
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


def test_lightgbm_is_a_default_candidate_and_a_spec_may_tune_its_parameters() -> None:
    spec = parse_spec("models: [{estimator: lightgbm, search: {num_leaves: [8, 31]}}]\n")
    resolved = resolve_spec(spec, target="y", task="classification")
    assert [m.estimator for m in resolved.models or []] == ["lightgbm"]
    defaults = resolve_spec(parse_spec(None), target="y", task="classification")
    assert "lightgbm" in [m.estimator for m in defaults.models or []]
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


def churn_trial(rows: int = 3000, **options: object) -> tuple[dict, list, pd.DataFrame, pd.Series]:
    """A LightGBM trial on churn_like's first 80% of rows, scored on the rest: its result, the
    models handed to on_fitted, and the training rows."""
    X, y = churn_like(rows)
    features = build_transformer(X).fit(X).transform(X)
    cut = int(rows * 0.8)
    handed: list = []
    result = run_trial(
        task="classification",
        estimator="lightgbm",
        params={},
        X_train=features[:cut],
        y_train=y[:cut],
        X_val=features[cut:],
        y_val=y[cut:],
        metric="accuracy",
        classes=["no", "yes"],
        on_fitted=lambda model, value: handed.append(model),
        seed=42,
        **options,
    )
    return result, handed, X[:cut], y[:cut]


def test_lightgbm_on_more_rows_than_the_threshold_stops_early_and_the_refit_keeps_its_trees() -> (
    None
):
    result, handed, X, y = churn_trial(stop_rows=2000)  # 2,400 training rows
    assert result["state"] == "succeeded", result
    trees = result["best_iteration"]
    assert 0 < trees < LIGHTGBM_MAX_TREES
    assert result["params"] == {}  # the search's point stays as drawn
    assert handed == []  # fitted on 90% of the rows: selection refits rather than reuse it
    assert churn_trial(stop_rows=2000)[0]["best_iteration"] == trees  # the held-out rows are seeded
    transformer = build_transformer(X).fit(X)
    params = refit_params(result)
    assert params == {"n_estimators": trees}
    refit = fit_model(
        transformer=transformer,
        task="classification",
        estimator="lightgbm",
        params=params,
        X=X,
        y=y,
    ).named_steps["model"]
    # Every training row, no eval set, exactly the trees the trial kept.
    assert refit.n_estimators == trees and refit.booster_.num_trees() == trees
    assert refit.evals_result_ == {}


def test_lightgbm_below_the_threshold_fits_as_before() -> None:
    result, handed, _, _ = churn_trial()  # 2,400 rows, under BOOSTING_EARLY_STOP_ROWS
    assert result["state"] == "succeeded" and "best_iteration" not in result
    assert refit_params(result) == {}
    (model,) = handed
    assert model.n_estimators == 100 and model.booster_.num_trees() == 100


def test_a_searched_n_estimators_caps_the_trees_and_cross_validation_records_the_folds_mean() -> (
    None
):
    X, y = make_friedman1(3000, noise=1.0, random_state=0)
    options = {
        "task": "regression",
        "estimator": "lightgbm",
        "params": {"n_estimators": 300, "learning_rate": 0.3},
        "X_train": X[:2400],
        "y_train": pd.Series(y[:2400]),
        "X_val": X[2400:],
        "y_val": pd.Series(y[2400:]),
        "metric": "r2",
        "classes": None,
        "stop_rows": 1000,
    }
    held_out = run_trial(**options)
    assert 0 < held_out["best_iteration"] < 300, held_out
    assert refit_params(held_out) == {
        "n_estimators": held_out["best_iteration"],
        "learning_rate": 0.3,
    }
    folded = run_trial(**options, folds=3)  # each fold fits 2,000 rows
    assert folded["state"] == "succeeded" and len(folded["fold_scores"]) == 3
    assert 0 < folded["best_iteration"] < 300


def test_a_class_of_one_row_fits_every_row_without_stopping_early() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 4))
    y = pd.Series(np.where(X[:, 0] > 0, "a", "b"))
    y.iloc[7] = "rare"
    result = run_trial(
        task="classification",
        estimator="lightgbm",
        params={"n_estimators": 20},
        X_train=X[:1000],
        y_train=y[:1000],
        X_val=X[1000:],
        y_val=y[1000:],
        metric="accuracy",
        classes=["a", "b", "rare"],
        stop_rows=500,
    )
    assert result["state"] == "succeeded", result
    assert "best_iteration" not in result
