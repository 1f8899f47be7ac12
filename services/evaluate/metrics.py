"""Score a fitted model on held-out rows and decide whether it may replace production."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import confusion_matrix

from shared.errors import SpecError
from shared.scoring import align_proba, get_metric, is_better, metrics_for, score

_CLASSIFICATION = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted")
_WITH_PROBA = ("roc_auc", "log_loss")


def _plain(value: Any) -> Any:
    """Turn numpy scalars into the Python values JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


def _optional(name: str, **inputs: Any) -> float | None:
    # AUC and log loss are undefined when the test rows miss a class; report that as None.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = score(name, **inputs)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _codes(values: Any, labels: list[Any], *, unknown: int) -> np.ndarray:
    """Each value's position in `labels` (`unknown` for a value not among them)."""
    codes = np.asarray(pd.Categorical(np.asarray(values), categories=labels).codes, dtype=np.int64)
    codes[codes < 0] = unknown
    return codes


def _classification(model: Any, X: Any, y: Any, classes: Sequence[Any]) -> dict[str, Any]:
    labels = list(classes)
    # The metrics are computed on label positions: scikit-learn's checks of text labels cost more
    # than the metrics. A label outside `labels` gets a code no other one has, as before.
    predicted = model.predict(X)
    y_true = _codes(y, labels, unknown=-1)
    y_pred = _codes(predicted, labels, unknown=-2)
    codes = list(range(len(labels)))
    result: dict[str, Any] = {
        name: score(name, y_true=y_true, y_pred=y_pred, classes=codes) for name in _CLASSIFICATION
    }
    proba = None
    if hasattr(model, "predict_proba"):
        raw = model.predict_proba(X)
        proba = align_proba(raw, model_classes=model.classes_, classes=labels)
    for name in _WITH_PROBA:
        result[name] = (
            None
            if proba is None
            else _optional(name, y_true=y_true, y_pred=y_pred, proba=proba, classes=codes)
        )
    matrix = confusion_matrix(y_true, y_pred, labels=codes)
    result["confusion_matrix"] = {
        "labels": [_plain(label) for label in labels],
        "matrix": matrix.astype(int).tolist(),
    }
    return result


def evaluate_model(
    model: Any, *, X: Any, y: Any, task: str, classes: Sequence[Any] | None
) -> dict[str, Any]:
    """Compute the task's metrics for `model` on rows X with true targets y, JSON-ready."""
    if task == "classification":
        labels = list(classes) if classes is not None else list(model.classes_)
        result = _classification(model, X, y, labels)
    elif task == "regression":
        y_pred = model.predict(X)
        result = {name: score(name, y_true=y, y_pred=y_pred) for name in metrics_for(task)}
    else:
        raise SpecError(f"task must be classification or regression, got {task!r}", field="task")
    result["rows"] = len(y)
    return result


def _verdict(passed: bool, reason: str, metric: str, cand: Any, champ: Any) -> dict[str, Any]:
    return {
        "passed": passed,
        "reason": reason,
        "metric": metric,
        "candidate": cand,
        "champion": champ,
    }


def decide(
    *,
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    metric: str,
    min_improvement: float,
) -> dict[str, Any]:
    """Pass the candidate when it beats the champion's metric by at least `min_improvement`."""
    direction = "higher" if get_metric(metric).greater_is_better else "lower"
    if min_improvement < 0:
        raise SpecError("min_improvement must be 0 or more", field="min_improvement")
    new = candidate.get(metric)
    if new is None:
        reason = f"the candidate has no {metric} value to compare"
        return _verdict(False, reason, metric, None, None)
    if champion is None:
        return _verdict(True, "no production model yet", metric, new, None)
    old = champion.get(metric)
    if old is None:
        reason = f"the production model has no {metric} value; the candidate replaces it"
        return _verdict(True, reason, metric, new, None)
    passed = is_better(metric, new, old, margin=min_improvement)
    verb = "beats" if passed else "does not beat"
    reason = (
        f"candidate {metric} {new:.4f} {verb} production {old:.4f} "
        f"by the required {min_improvement:g} ({direction} is better)"
    )
    return _verdict(passed, reason, metric, new, old)
