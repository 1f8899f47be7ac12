"""The shared metrics table, evaluation of a fitted model and the promotion decision."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression

from services.evaluate.metrics import decide, evaluate_model
from shared.scoring import DEFAULT_METRIC, METRICS, align_proba, is_better, score


def test_table_covers_both_tasks() -> None:
    by_task = {task: {n for n, m in METRICS.items() if m.task == task} for task in DEFAULT_METRIC}
    assert by_task["classification"] == {
        "accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro", "roc_auc",
        "log_loss",
    }  # fmt: skip
    assert by_task["regression"] == {"rmse", "mae", "r2"}
    assert DEFAULT_METRIC == {"classification": "f1_macro", "regression": "rmse"}
    assert [n for n, m in METRICS.items() if m.needs_proba] == ["roc_auc", "log_loss"]


def test_plain_scores() -> None:
    assert score("accuracy", y_true=[1, 0, 1, 1], y_pred=[1, 0, 0, 1]) == 0.75
    assert score("rmse", y_true=[0.0, 0.0], y_pred=[3.0, 4.0]) == pytest.approx(12.5**0.5)
    assert score("mae", y_true=[0.0, 0.0], y_pred=[3.0, 4.0]) == 3.5
    assert score(
        "f1_macro", y_true=["a", "b"], y_pred=["a", "a"], classes=["a", "b"]
    ) == pytest.approx(1 / 3)


def test_binary_auc_uses_the_second_class_as_positive() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = ["no", "yes", "no", "yes"]
    assert score("roc_auc", y_true=y, y_pred=y, proba=proba, classes=["no", "yes"]) == 1.0


def test_multiclass_auc_and_log_loss() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    proba = model.predict_proba(X)
    assert score("roc_auc", y_true=y, y_pred=None, proba=proba, classes=[0, 1, 2]) > 0.95
    assert 0 < score("log_loss", y_true=y, y_pred=None, proba=proba, classes=[0, 1, 2]) < 0.3


def test_proba_metric_without_proba_is_an_error() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        score("log_loss", y_true=[0, 1], y_pred=[0, 1])


def test_is_better_follows_direction_and_margin() -> None:
    assert is_better("f1_macro", 0.9, 0.8)
    assert not is_better("f1_macro", 0.8, 0.9)
    assert is_better("rmse", 1.0, 2.0)
    assert not is_better("rmse", 2.0, 1.0)
    assert not is_better("f1_macro", 0.85, 0.8, margin=0.1)
    assert is_better("rmse", 1.0, 1.5, margin=0.5)
    assert not is_better("r2", 0.5, 0.5)


def test_align_proba_reorders_and_fills_absent_classes() -> None:
    aligned = align_proba([[0.3, 0.7]], model_classes=["b", "a"], classes=["a", "b", "c"])
    assert aligned.tolist() == [[0.7, 0.3, 0.0]]


def test_evaluate_classification_is_json_ready() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    result = evaluate_model(model, X=X, y=y, task="classification", classes=[0, 1])
    json.dumps(result, allow_nan=False)
    assert result["accuracy"] > 0.9 and result["roc_auc"] > 0.95
    assert result["confusion_matrix"]["labels"] == [0, 1]
    assert np.sum(result["confusion_matrix"]["matrix"]) == len(y) == result["rows"]


def test_evaluate_reports_undefined_auc_as_none() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    result = evaluate_model(model, X=X[:50], y=y[:50], task="classification", classes=[0, 1, 2])
    assert result["roc_auc"] is None
    assert result["confusion_matrix"]["matrix"][0] == [50, 0, 0]


def test_evaluate_regression() -> None:
    class Fixed:
        def predict(self, X: object) -> np.ndarray:
            return np.array([1.0, 2.0, 3.0])

    result = evaluate_model(Fixed(), X=None, y=[1.0, 2.0, 5.0], task="regression", classes=None)
    assert result == {"rmse": pytest.approx((4 / 3) ** 0.5), "mae": pytest.approx(2 / 3),
                      "r2": pytest.approx(1 - 4 / (78 / 9)), "rows": 3}  # fmt: skip


def test_decide_without_champion_passes() -> None:
    verdict = decide(
        candidate={"f1_macro": 0.7}, champion=None, metric="f1_macro", min_improvement=0.01
    )
    assert verdict == {"passed": True, "reason": "no production model yet", "metric": "f1_macro",
                       "candidate": 0.7, "champion": None}  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "new", "old", "passed"),
    [("f1_macro", 0.9, 0.85, True), ("f1_macro", 0.86, 0.85, False), ("rmse", 9.0, 10.0, True),
     ("rmse", 10.5, 10.0, False)],
)  # fmt: skip
def test_decide_needs_the_minimum_improvement(
    metric: str, new: float, old: float, passed: bool
) -> None:
    verdict = decide(
        candidate={metric: new}, champion={metric: old}, metric=metric, min_improvement=0.02
    )
    assert verdict["passed"] is passed
    assert (verdict["candidate"], verdict["champion"]) == (new, old)
    assert ("does not beat" in verdict["reason"]) is not passed
