"""Plot data the evaluate stage stores in its report: curves, points and importance."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.evaluate.plots import plot_data
from tests.datasets import cancer_frame, diabetes_frame


def test_classification_has_one_roc_and_pr_curve_for_the_positive_class() -> None:
    frame = cancer_frame().drop(columns=["clinic"])
    X, y = frame.drop(columns=["diagnosis"]), frame["diagnosis"]
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    data = plot_data(
        model, X=X, y=y, task="classification", classes=["benign", "malignant"], seed=0
    )
    (roc,) = data["roc"]
    assert roc["label"] == "malignant" and roc["auc"] > 0.95
    assert roc["x"][0] == 0 and roc["x"][-1] == 1 and len(roc["x"]) <= 200
    assert data["pr"][0]["ap"] > 0.9
    names = [f["name"] for f in data["importance"]["features"]]
    assert sorted(names) == sorted(X.columns) and data["importance"]["scoring"] == "accuracy"


def test_regression_has_points_and_importance() -> None:
    frame = diabetes_frame()
    X, y = frame.drop(columns=["progression"]), frame["progression"]
    model = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
    data = plot_data(model, X=X, y=y, task="regression", classes=None, seed=0)
    assert len(data["points"]["actual"]) == len(y) == len(data["points"]["predicted"])
    assert "roc" not in data and data["importance"]["features"][0]["mean"] > 0
