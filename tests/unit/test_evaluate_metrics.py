"""The metrics evaluate reports for a candidate, computed on every test row."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, log_loss

from services.evaluate.metrics import evaluate_model
from tests.datasets import cancer_frame


def test_metrics_hold_when_the_classes_are_not_in_sorted_order() -> None:
    """A class the test rows lack, listed last, leaves log loss and F1 as scikit-learn gives
    them (log loss once read the probability columns in the wrong order: 30 for a good model)."""
    frame = cancer_frame().drop(columns=["clinic"])
    X, y = frame.drop(columns=["diagnosis"]), frame["diagnosis"]
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    classes = ["malignant", "benign", "other"]
    metrics = evaluate_model(model, X=X, y=y, task="classification", classes=classes)
    proba = model.predict_proba(X)  # columns benign, malignant (sorted)
    assert metrics["log_loss"] == log_loss(y, proba, labels=["benign", "malignant"])
    assert metrics["log_loss"] < 0.2
    expected = f1_score(y, model.predict(X), labels=classes, average="macro", zero_division=0)
    assert metrics["f1_macro"] == expected
    assert metrics["confusion_matrix"]["labels"] == classes
    assert metrics["confusion_matrix"]["matrix"][2] == [0, 0, 0]
