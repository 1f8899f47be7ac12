"""The one metrics table that training and evaluation share, so both rank models the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType

TASKS = ("classification", "regression")
DEFAULT_METRIC = {"classification": "f1_macro", "regression": "rmse"}


def _skm() -> ModuleType:
    """scikit-learn's metrics, imported when a metric is computed: the CLI and the prediction
    service read this table's names, and importing scikit-learn costs them seconds."""
    from sklearn import metrics

    return metrics


# Every metric function takes (y_true, y_pred, proba, classes); proba columns follow `classes`.
MetricFn = Callable[[Any, Any, Any, Sequence[Any] | None], float]


@dataclass(frozen=True)
class Metric:
    """A named metric, the task it applies to and which way is better."""

    name: str
    task: str
    greater_is_better: bool
    needs_proba: bool
    fn: MetricFn


def _roc_auc(y_true: Any, _pred: Any, proba: Any, classes: Sequence[Any] | None) -> float:
    labels = list(classes) if classes is not None else sorted(set(np.asarray(y_true).tolist()))
    proba = np.asarray(proba, dtype=float)
    if len(labels) == 2:
        # Binary AUC wants the score of the positive class, which is the second label.
        positive = np.asarray(y_true) == labels[1]
        return float(_skm().roc_auc_score(positive, proba[:, 1]))
    return float(
        _skm().roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
    )


def _log_loss(y_true: Any, _pred: Any, proba: Any, classes: Sequence[Any] | None) -> float:
    labels = list(classes) if classes is not None else None
    return float(_skm().log_loss(y_true, proba, labels=labels))


def _averaged(name: str, average: str) -> MetricFn:
    """scikit-learn's metric `name` averaged over the labels as `average` says."""

    def metric(y_true: Any, y_pred: Any, _proba: Any, classes: Sequence[Any] | None) -> float:
        labels = list(classes) if classes is not None else None
        fn = getattr(_skm(), name)
        # zero_division=0 keeps an unpredicted class from turning the score into a warning.
        return float(fn(y_true, y_pred, labels=labels, average=average, zero_division=0))

    return metric


def _plain(name: str) -> MetricFn:
    """scikit-learn's metric `name` of the labels or values alone."""
    return lambda y_true, y_pred, _proba, _classes: float(getattr(_skm(), name)(y_true, y_pred))


def _table(*metrics: Metric) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


_C, _R = "classification", "regression"
METRICS: dict[str, Metric] = _table(
    Metric("accuracy", _C, True, False, _plain("accuracy_score")),
    Metric("f1_macro", _C, True, False, _averaged("f1_score", "macro")),
    Metric("f1_weighted", _C, True, False, _averaged("f1_score", "weighted")),
    Metric("precision_macro", _C, True, False, _averaged("precision_score", "macro")),
    Metric("recall_macro", _C, True, False, _averaged("recall_score", "macro")),
    Metric("roc_auc", _C, True, True, _roc_auc),
    Metric("log_loss", _C, False, True, _log_loss),
    Metric("rmse", _R, False, False, _plain("root_mean_squared_error")),
    Metric("mae", _R, False, False, _plain("mean_absolute_error")),
    Metric("r2", _R, True, False, _plain("r2_score")),
)


def get_metric(name: str) -> Metric:
    """Return the metric called `name`, or raise KeyError listing the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None


def metrics_for(task: str) -> list[str]:
    """Return the names of the metrics that apply to `task`."""
    return [name for name, metric in METRICS.items() if metric.task == task]


def score(
    name: str,
    *,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> float:
    """Compute metric `name`; raise ValueError when it needs probabilities and none were given."""
    metric = get_metric(name)
    if metric.needs_proba and proba is None:
        raise ValueError(f"metric {name!r} needs predicted probabilities")
    return metric.fn(y_true, y_pred, proba, classes)


def is_better(name: str, a: float, b: float, *, margin: float = 0.0) -> bool:
    """Tell whether `a` beats `b` strictly and by at least `margin`, in the metric's direction."""
    gain = a - b if get_metric(name).greater_is_better else b - a
    return gain > 0 and gain >= margin


def align_proba(proba: Any, *, model_classes: Sequence[Any], classes: Sequence[Any]) -> np.ndarray:
    """Reorder probability columns from the model's class order to `classes`; absent ones are 0."""
    proba = np.asarray(proba, dtype=float)
    position = {label: i for i, label in enumerate(list(model_classes))}
    aligned = np.zeros((proba.shape[0], len(classes)))
    for j, label in enumerate(classes):
        if label in position:
            aligned[:, j] = proba[:, position[label]]
    return aligned
