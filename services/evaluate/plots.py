"""Plot data for the evaluation report: curves, residuals and feature importance, JSON-ready."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    r2_score,
    roc_curve,
)

from shared.scoring import align_proba

MAX_CURVE_POINTS = 200  # enough for a smooth line on a 400-pixel plot
MAX_SCATTER_POINTS = 500
# The plots are drawn from a seeded sample of the test split, so a big test split costs what a
# small one does; the metrics themselves are computed on every test row (metrics.py).
PLOT_ROWS = 5000  # curves and predicted-vs-actual points
IMPORTANCE_ROWS = 1000  # permutation importance: columns x repeats predictions of this many rows
IMPORTANCE_REPEATS = 3
BATCH_ROWS = 60_000  # shuffled copies scored in one predict call, at most this many rows


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


def sample_rows(X: Any, y: Any, *, limit: int, seed: int) -> tuple[Any, Any]:
    """At most `limit` rows of X and y, drawn with the seed (all of them when fewer)."""
    if len(X) <= limit:
        return X, y
    sample = X.sample(limit, random_state=seed)
    return sample, y.loc[sample.index]


def _shuffled(X: pd.DataFrame, *, seed: int, repeats: int) -> list[tuple[int, Any]]:
    """(column position, its values shuffled) for every column and repeat, drawn as
    scikit-learn's permutation_importance draws them, so the same seed gives the same numbers."""
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    found = []
    for position in range(X.shape[1]):
        rng = np.random.RandomState(column_seed)
        order = np.arange(len(X))
        values = X.iloc[:, position].to_numpy()
        for _ in range(repeats):
            rng.shuffle(order)
            values = values[order]  # each repeat shuffles the last one again, as sklearn does
            found.append((position, values))
    return found


def _accuracy(truth: Any, predicted: Any) -> float:
    """accuracy_score without its checks of the labels, which cost more than the count here."""
    return float(np.mean(truth == predicted))


def _batched_scores(
    model: Any, X: pd.DataFrame, y: Any, shuffles: list[tuple[int | None, Any]]
) -> list[float]:
    """The model's score on each copy of X with one column replaced, predicted in few calls
    (a pipeline's transform costs much the same for 1,000 rows as for 50,000)."""
    measure = _accuracy if is_classifier(model) else r2_score
    truth = np.asarray(y)
    rows = len(X)
    per_batch = max(1, BATCH_ROWS // max(rows, 1))
    scores: list[float] = []
    for start in range(0, len(shuffles), per_batch):
        batch = shuffles[start : start + per_batch]
        frame = pd.concat([X] * len(batch), ignore_index=True)
        for block, (position, values) in enumerate(batch):
            if position is not None:
                frame.iloc[block * rows : (block + 1) * rows, position] = values
        predicted = np.asarray(model.predict(frame))
        for block in range(len(batch)):
            scores.append(float(measure(truth, predicted[block * rows : (block + 1) * rows])))
    return scores


def feature_importance(model: Any, *, X: Any, y: Any, seed: int) -> dict[str, Any]:
    """How much the model's own score drops when each input column is shuffled (on at most
    IMPORTANCE_ROWS rows; the same numbers as scikit-learn's permutation_importance)."""
    X, y = sample_rows(X, y, limit=IMPORTANCE_ROWS, seed=seed)
    shuffles = _shuffled(X, seed=seed, repeats=IMPORTANCE_REPEATS)
    baseline, *scores = _batched_scores(model, X, y, [(None, None), *shuffles])
    drops = baseline - np.array(scores).reshape(X.shape[1], IMPORTANCE_REPEATS)
    ranked = sorted(
        zip(X.columns, drops.mean(axis=1), drops.std(axis=1), strict=True),
        key=lambda item: -item[1],
    )
    return {
        "method": "permutation",
        "scoring": "accuracy" if is_classifier(model) else "r2",
        "rows": len(X),
        "features": [
            {"name": str(name), "mean": round(float(m), 5), "std": round(float(s), 5)}
            for name, m, s in ranked
        ],
    }


def plot_data(
    model: Any, *, X: Any, y: Any, task: str, classes: Sequence[Any] | None, seed: int
) -> dict[str, Any]:
    """Everything the console plots for one evaluated candidate, and the rows it was drawn from."""
    data: dict[str, Any] = {"importance": feature_importance(model, X=X, y=y, seed=seed)}
    X_plot, y_plot = sample_rows(X, y, limit=PLOT_ROWS, seed=seed)
    if task == "classification":
        labels = list(classes) if classes is not None else list(model.classes_)
        data.update(classification_curves(model, X=X_plot, y=y_plot, classes=labels))
    else:
        data.update(regression_points(model, X=X_plot, y=y_plot, seed=seed))
    data["sample"] = {
        "test_rows": len(X),
        "plot_rows": len(X_plot),
        "importance_rows": data["importance"]["rows"],
    }
    return data
