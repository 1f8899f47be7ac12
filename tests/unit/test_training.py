"""Search-space sampling, trials, tuning and fitting the final pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.pipeline import Pipeline

from services.preprocess.features import build_transformer
from services.train.training import (
    CANDIDATES,
    CV_MAX_ROWS,
    ESTIMATORS,
    best_trial,
    default_candidates,
    fit_model,
    make_estimator,
    run_trial,
    sample_params,
    selection_method,
    tune,
)
from shared.client.render import run_lines
from shared.errors import DataError, SpecError


def test_small_all_list_space_is_the_full_grid() -> None:
    space = {"a": [1, 2], "b": ["x", None]}
    points = sample_params(space, trials=4, seed=0)
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": None},
        {"a": 2, "b": "x"},
        {"a": 2, "b": None},
    ]


def test_large_or_continuous_space_is_sampled_randomly_and_seeded() -> None:
    space = {"C": {"loguniform": [0.01, 100]}, "n": {"int": [1, 5]}, "f": {"uniform": [0, 1]}}
    points = sample_params(space, trials=6, seed=3)
    assert len(points) == 6
    assert points == sample_params(space, trials=6, seed=3)
    assert points != sample_params(space, trials=6, seed=4)
    for p in points:
        assert 0.01 <= p["C"] <= 100 and p["n"] in range(1, 6) and 0 <= p["f"] <= 1
        assert type(p["n"]) is int and type(p["C"]) is float
    json.dumps(points)


def test_grid_larger_than_trials_is_sampled() -> None:
    points = sample_params({"a": list(range(10)), "b": list(range(10))}, trials=5, seed=0)
    assert len(points) == 5
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 5


def test_empty_space_gives_one_default_trial() -> None:
    assert sample_params({}, trials=4, seed=0) == [{}]


@pytest.mark.parametrize(
    "space",
    [
        {"C": []},
        {"C": {"loguniform": [0, 1]}},
        {"C": {"uniform": [2, 1]}},
        {"C": {"normal": [0, 1]}},
        {"C": 3},
    ],
)
def test_bad_space_names_the_param(space: dict) -> None:
    with pytest.raises(SpecError) as caught:
        sample_params(space, trials=3, seed=0)
    assert caught.value.field == "C"


def test_make_estimator_rejects_unknown_names() -> None:
    with pytest.raises(SpecError, match="choose one of ridge") as caught:
        make_estimator("regression", "svm", {})
    assert caught.value.field == "estimator"
    with pytest.raises(SpecError, match="no parameter 'depth'") as caught:
        make_estimator("classification", "random_forest", {"depth": 3})
    assert caught.value.field == "random_forest.depth"
    assert make_estimator("classification", "random_forest", {"max_depth": 3}).max_depth == 3


def test_estimator_names_match_candidates() -> None:
    assert {task: tuple(CANDIDATES[task]) for task in CANDIDATES} == ESTIMATORS
    assert ESTIMATORS["classification"] == (
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
        "lightgbm",
    )


def iris_arrays() -> tuple[np.ndarray, pd.Series, np.ndarray, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    order = np.random.default_rng(0).permutation(len(y))
    train, val = order[:100], order[100:]
    return X.to_numpy()[train], y.iloc[train], X.to_numpy()[val], y.iloc[val]


def trial(**overrides: object) -> dict:
    X_train, y_train, X_val, y_val = iris_arrays()
    options: dict = {"task": "classification", "estimator": "logistic_regression", "params": {}}
    options |= {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}
    options |= {"metric": "f1_macro", "classes": [0, 1, 2]} | overrides
    return run_trial(**options)


def test_trial_succeeds_and_is_json() -> None:
    result = trial(params={"C": 1.0}, metric="roc_auc")
    json.dumps(result)
    assert result["state"] == "succeeded" and result["error"] is None
    assert 0.9 < result["score"] <= 1.0
    assert result["params"] == {"C": 1.0} and result["seconds"] >= 0


def test_failed_fit_is_recorded_not_raised() -> None:
    result = trial(params={"C": -1.0})
    assert result["state"] == "failed" and result["score"] is None
    assert "C" in result["error"]
    json.dumps(result)


def test_a_parameter_the_estimator_refuses_fails_the_trial_with_the_reason() -> None:
    """Not a crash of the worker, which recovery would take for a lost one and send again."""
    result = trial(params={"Cc": 1.0})
    assert result["state"] == "failed" and result["score"] is None
    assert "no parameter 'Cc'" in result["error"] and "known parameters" in result["error"]


def test_tune_runs_every_candidate_and_best_wins() -> None:
    X_train, y_train, X_val, y_val = iris_arrays()
    trials = tune(
        [*default_candidates("classification"), ("logistic_regression", {"C": [-1.0]})],
        task="classification", trials_per_candidate=2, seed=0, X_train=X_train,
        y_train=y_train, X_val=X_val, y_val=y_val, metric="log_loss", classes=[0, 1, 2],
    )  # fmt: skip
    assert [t["estimator"] for t in trials].count("random_forest") == 2
    assert next(t for t in trials if t["params"] == {"C": -1.0})["state"] == "failed"
    best = best_trial(trials, "log_loss")
    assert best["score"] == min(t["score"] for t in trials if t["state"] == "succeeded")


def test_best_trial_of_all_failures_quotes_the_first_error() -> None:
    failed = [{"state": "failed", "error": "ValueError: C must be > 0", "score": None}] * 2
    with pytest.raises(DataError, match="C must be > 0"):
        best_trial(failed, "f1_macro")


def test_fit_model_keeps_the_train_fitted_transformer() -> None:
    df = load_diabetes(as_frame=True).frame
    X, y = df.drop(columns="target"), df["target"]
    transformer = build_transformer(X.head(300)).fit(X.head(300))
    mean = transformer.named_transformers_["numeric"].named_steps["scale"].mean_.copy()
    model = fit_model(
        transformer=transformer, task="regression", estimator="ridge", params={"alpha": 1.0},
        X=X.head(300), y=y.head(300),
    )  # fmt: skip
    assert isinstance(model, Pipeline)
    assert model.named_steps["features"] is transformer
    assert np.array_equal(
        model.named_steps["features"].named_transformers_["numeric"][-1].mean_, mean
    )
    assert model.predict(X.tail(5)).shape == (5,)


def test_small_searches_with_a_choice_to_make_are_cross_validated() -> None:
    assert selection_method("auto", trials=12, rows=455, folds=5, smallest_class=170) == {
        "method": "cv",
        "folds": 5,
    }
    # One trial has nothing to choose; many rows make one validation split reliable enough.
    assert selection_method("auto", trials=1, rows=455, folds=5, smallest_class=170) == {
        "method": "holdout"
    }
    assert (
        selection_method("auto", trials=12, rows=CV_MAX_ROWS + 1, folds=5, smallest_class=None)[
            "method"
        ]
        == "holdout"
    )
    # A class too small for the folds: auto keeps the split, cv asked for uses fewer folds.
    assert selection_method("auto", trials=12, rows=40, folds=5, smallest_class=3) == {
        "method": "holdout"
    }
    assert selection_method("cv", trials=1, rows=40, folds=5, smallest_class=3) == {
        "method": "cv",
        "folds": 3,
    }
    assert selection_method("holdout", trials=12, rows=455, folds=5, smallest_class=170) == {
        "method": "holdout"
    }


def test_a_cross_validated_trial_records_each_folds_score_and_their_mean() -> None:
    X_train, y_train, X_val, y_val = iris_arrays()
    result = run_trial(
        task="classification", estimator="logistic_regression", params={"C": 1.0},
        X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val, metric="accuracy",
        classes=[0, 1, 2], folds=4, seed=7,
    )  # fmt: skip
    assert result["state"] == "succeeded"
    assert len(result["fold_scores"]) == 4
    assert result["score"] == pytest.approx(sum(result["fold_scores"]) / 4)
    assert min(result["fold_scores"]) > 0.8 and max(result["fold_scores"]) <= 1.0
    shown = run_lines(
        {
            "run_id": "r", "pipeline": "p", "state": "succeeded", "error": None, "stages": [],
            "metric": "accuracy", "trials": 1, "selection": {"method": "cv", "folds": 4},
            "top_trials": [{"index": 0, **result, "worker": "train-1"}],
        }
    )  # fmt: skip
    assert "  best trials of 1 (4-fold cross-validated accuracy):" in shown
    assert any(f"{result['score']:.4f} ±" in line for line in shown)
