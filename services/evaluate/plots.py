"""Plot data for the evaluation report: curves, residuals and feature importance, JSON-ready."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.inspection import permutation_importance
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from shared.scoring import align_proba

MAX_CURVE_POINTS = 200  # enough for a smooth line on a 400-pixel plot
MAX_SCATTER_POINTS = 500
IMPORTANCE_ROWS = 1000  # permutation importance on a sample keeps evaluate quick on big tests
IMPORTANCE_REPEATS = 3


def _thin(values: Any, keep: Sequence[int]) -> list[float]:
    return [round(float(values[i]), 5) for i in keep]


def _positions(size: int, limit: int) -> list[int]:
    """Evenly spaced positions that keep the first and the last."""
    if size <= limit:
        return list(range(size))
    return sorted({round(i * (size - 1) / (limit - 1)) for i in range(limit)})


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _curves(label: Any, hits: Any, scores: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One class's ROC and precision-recall curves, thinned to MAX_CURVE_POINTS."""
    fpr, tpr, _ = roc_curve(hits, scores)
    keep = _positions(len(fpr), MAX_CURVE_POINTS)
    roc = {"label": _plain(label), "x": _thin(fpr, keep), "y": _thin(tpr, keep)}
    roc["auc"] = float(auc(fpr, tpr))
    precision, recall, _ = precision_recall_curve(hits, scores)
    keep = _positions(len(recall), MAX_CURVE_POINTS)
    pr = {"label": _plain(label), "x": _thin(recall, keep), "y": _thin(precision, keep)}
    pr["ap"] = float(average_precision_score(hits, scores))
    return roc, pr


def classification_curves(model: Any, *, X: Any, y: Any, classes: Sequence[Any]) -> dict[str, Any]:
    """ROC and precision-recall curves: the positive class if binary, else one per class."""
    if not hasattr(model, "predict_proba"):
        return {"roc": [], "pr": []}
    labels = list(classes)
    proba = align_proba(model.predict_proba(X), model_classes=model.classes_, classes=labels)
    truth = np.asarray(y)
    result: dict[str, list[dict[str, Any]]] = {"roc": [], "pr": []}
    for index, label in enumerate(labels):
        hits = truth == label
        if (len(labels) == 2 and index == 0) or hits.all() or not hits.any():
            continue  # binary: one curve, for the positive class; a curve needs both outcomes
        roc, pr = _curves(label, hits, proba[:, index])
        result["roc"].append(roc)
        result["pr"].append(pr)
    return result


def regression_points(model: Any, *, X: Any, y: Any, seed: int) -> dict[str, Any]:
    """Predicted against actual values (residuals follow), sampled to a plottable size."""
    actual = np.asarray(y, dtype=float)
    predicted = np.asarray(model.predict(X), dtype=float)
    rows = np.arange(len(actual))
    if len(rows) > MAX_SCATTER_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_SCATTER_POINTS, replace=False))
    return {
        "points": {
            "actual": [round(float(v), 5) for v in actual[rows]],
            "predicted": [round(float(v), 5) for v in predicted[rows]],
        }
    }


def feature_importance(model: Any, *, X: Any, y: Any, seed: int) -> dict[str, Any]:
    """How much the model's own score drops when each input column is shuffled."""
    if len(X) > IMPORTANCE_ROWS:
        sample = X.sample(IMPORTANCE_ROWS, random_state=seed)
        X, y = sample, y.loc[sample.index]
    result = permutation_importance(
        model, X, y, n_repeats=IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    ranked = sorted(
        zip(X.columns, result.importances_mean, result.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return {
        "method": "permutation",
        "scoring": "accuracy" if hasattr(model, "predict_proba") else "r2",
        "features": [
            {"name": str(name), "mean": round(float(m), 5), "std": round(float(s), 5)}
            for name, m, s in ranked
        ],
    }


def plot_data(
    model: Any, *, X: Any, y: Any, task: str, classes: Sequence[Any] | None, seed: int
) -> dict[str, Any]:
    """Everything the console plots for one evaluated candidate."""
    data: dict[str, Any] = {"importance": feature_importance(model, X=X, y=y, seed=seed)}
    if task == "classification":
        labels = list(classes) if classes is not None else list(model.classes_)
        data.update(classification_curves(model, X=X, y=y, classes=labels))
    else:
        data.update(regression_points(model, X=X, y=y, seed=seed))
    return data
