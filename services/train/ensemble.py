"""Ensemble selection: the search's best trials averaged, as AutoGluon and auto-sklearn end theirs.

Caruana et al. (2004), "Ensemble selection from libraries of models": start from the best trial's
predictions and, round after round, add (with replacement) whichever trial's predictions improve
the average most on the rows the trials were scored on, out of fold under cross-validation. The
number of times a trial was added is its weight. The best round is kept, so the blend is never
worse than the best trial on those rows. A blend of a forest, a boosting model and a linear model
usually generalises better than any one of them: their errors differ.

The served model is a soft `VotingClassifier` (probabilities averaged with the weights) or a
`VotingRegressor`, which skl2onnx exports like the single estimators.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import VotingClassifier, VotingRegressor

from shared.scoring import METRICS, score

LIBRARY = 20  # the best trials a blend may draw from
ROUNDS = 25  # additions: weights are multiples of 1/25 at the finest
MAX_MEMBERS = 5  # distinct trials in a blend, which bounds the cost of serving it


def _value(
    blend: np.ndarray, y: np.ndarray, *, metric: str, classes: Sequence[Any] | None
) -> float:
    if classes is not None:
        labels = np.asarray(classes)
        return score(
            metric, y_true=y, y_pred=labels[blend.argmax(axis=1)], proba=blend, classes=classes
        )
    return score(metric, y_true=y, y_pred=blend)


def _judge(
    blend: np.ndarray,
    y: np.ndarray,
    *,
    metric: str,
    classes: Sequence[Any] | None,
    folds: Sequence[np.ndarray] | None,
    truth: np.ndarray | None,
) -> tuple[tuple[float, float], float]:
    """How good a blend is, as a key that sorts better blends higher: the metric (the mean over
    `folds`, each an array of row positions, as the trials were scored; else over every row),
    then (for a coarse metric such as accuracy, whose ties are common) a smooth loss: log loss
    for classes, squared error for numbers; and its metric value. `truth`: each row's class as a
    column of `blend`."""
    groups = folds if folds else [np.arange(len(y))]
    value = float(np.mean([_value(blend[g], y[g], metric=metric, classes=classes) for g in groups]))
    if truth is not None:
        given = np.where(truth >= 0, blend[np.arange(len(y)), np.maximum(truth, 0)], 0.0)
        smooth = float(-np.log(np.clip(given, 1e-15, 1.0)).mean())
    else:
        smooth = float(np.mean((blend - y.astype(float)) ** 2))
    gain = value if METRICS[metric].greater_is_better else -value
    # Rounded, so that the same blend summed in another order ties instead of winning.
    return (round(gain, 12), round(-smooth, 12)), value


def blend_weights(
    predictions: Sequence[np.ndarray],
    y: Any,
    *,
    metric: str,
    classes: Sequence[Any] | None,
    folds: Sequence[np.ndarray] | None = None,
    rounds: int = ROUNDS,
    max_members: int = MAX_MEMBERS,
) -> tuple[dict[int, int], float]:
    """The blend of `predictions` (each a trial's, best trial first: probabilities in `classes`
    order, or values) that scores best on `y`, by the mean of its scores on `folds` when the
    trials were cross-validated: {position: times added}, and that score."""
    y = np.asarray(y) if classes is not None else np.asarray(y, dtype=float)
    truth = None
    if classes is not None:
        column = {label: i for i, label in enumerate(classes)}
        truth = np.array([column.get(label, -1) for label in y])  # -1: a class never trained on
    picks: Counter[int] = Counter({0: 1})
    total = np.asarray(predictions[0], dtype=float).copy()
    best = (_judge(total, y, metric=metric, classes=classes, folds=folds, truth=truth), dict(picks))
    for _ in range(rounds - 1):
        allowed = picks if len(picks) >= max_members else range(len(predictions))
        count = sum(picks.values())
        tried = [
            (
                _judge(
                    (total + predictions[j]) / (count + 1),
                    y,
                    metric=metric,
                    classes=classes,
                    folds=folds,
                    truth=truth,
                ),
                j,
            )
            for j in allowed
        ]
        judged, chosen = max(tried, key=lambda pair: pair[0][0])
        picks[chosen] += 1
        total += predictions[chosen]
        if judged[0] > best[0][0]:
            best = (judged, dict(picks))
    (_, value), weights = best
    return weights, float(value)


def voting_model(task: str, members: Sequence[tuple[str, BaseEstimator, float]]) -> BaseEstimator:
    """An unfitted soft-voting ensemble of (name, estimator, weight) members."""
    estimators = [(name, estimator) for name, estimator, _ in members]
    # skl2onnx needs the weights as an array, and a classifier's transform not flattened.
    weights = np.array([weight for _, _, weight in members], dtype=float)
    if task == "classification":
        return VotingClassifier(estimators, voting="soft", weights=weights, flatten_transform=False)
    return VotingRegressor(estimators, weights=weights)


def dump_predictions(predicted: np.ndarray) -> bytes:
    """A trial's predictions as a .npy file (plain numbers: loaded without pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(predicted, dtype=float), allow_pickle=False)
    return buffer.getvalue()


def load_predictions(data: bytes) -> np.ndarray:
    """The array `dump_predictions` wrote; never unpickles."""
    return np.load(io.BytesIO(data), allow_pickle=False)
