"""Plot data the evaluate stage stores in its report: curves, points and importance."""

from __future__ import annotations

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.evaluate.plots import (
    IMPORTANCE_REPEATS,
    IMPORTANCE_ROWS,
    PLOT_ROWS,
    feature_importance,
    plot_data,
)
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


def test_the_report_states_the_bounded_samples_its_plots_were_drawn_from() -> None:
    frame = cancer_frame().drop(columns=["clinic"])
    X, y = frame.drop(columns=["diagnosis"]), frame["diagnosis"]
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    big_X = pd.concat([X] * 12, ignore_index=True)  # 569 rows x 12: more than PLOT_ROWS
    big_y = pd.concat([y] * 12, ignore_index=True)
    data = plot_data(
        model, X=big_X, y=big_y, task="classification", classes=["benign", "malignant"], seed=0
    )
    assert len(big_X) > PLOT_ROWS > IMPORTANCE_ROWS
    assert data["sample"] == {
        "test_rows": len(big_X),
        "plot_rows": PLOT_ROWS,
        "importance_rows": IMPORTANCE_ROWS,
    }
    assert data["importance"]["rows"] == IMPORTANCE_ROWS
    small = plot_data(
        model, X=X, y=y, task="classification", classes=["benign", "malignant"], seed=0
    )
    assert small["sample"] == {"test_rows": len(X), "plot_rows": len(X), "importance_rows": len(X)}


def test_importance_is_what_scikit_learns_permutation_importance_gives() -> None:
    """Scored in a few batched predictions, with the same shuffles and so the same numbers."""
    frame = cancer_frame().drop(columns=["clinic"])
    X, y = frame.drop(columns=["diagnosis"]), frame["diagnosis"]
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    ours = feature_importance(model, X=X, y=y, seed=3)
    theirs = permutation_importance(model, X, y, n_repeats=IMPORTANCE_REPEATS, random_state=3)
    got = {f["name"]: (f["mean"], f["std"]) for f in ours["features"]}
    for name, mean, std in zip(
        X.columns, theirs.importances_mean, theirs.importances_std, strict=True
    ):
        assert got[name] == (round(float(mean), 5), round(float(std), 5))
