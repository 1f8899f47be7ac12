"""FLAML's side of `make bench-quality`, run in its own virtualenv (.cache/bench-flaml).

`python quality_flaml.py TRAIN.csv TEST.csv TARGET TASK METRIC BUDGET` fits FLAML's AutoML on the
training rows within BUDGET seconds (its `time_budget`; it retrains the best configuration on all
of them, its default) and prints {"score", "seconds", "estimator"} as JSON: the score on the test
rows (accuracy, or r2 for regression), the wall time of the fit.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
from flaml import AutoML
from sklearn.metrics import accuracy_score, r2_score


def main(train: str, test: str, target: str, task: str, metric: str, budget: str) -> None:
    """Fit within the budget, score on the test rows, print the JSON line."""
    frames = []
    for path in (train, test):
        frame = pd.read_csv(path)
        for column in frame.columns:
            if column != target and not pd.api.types.is_numeric_dtype(frame[column]):
                frame[column] = frame[column].astype("category")
        frames.append(frame)
    train_frame, test_frame = frames
    y_train, y_test = train_frame.pop(target), test_frame.pop(target)
    automl = AutoML()
    started = time.perf_counter()
    automl.fit(
        train_frame,
        y_train,
        task=task,
        metric=metric,
        time_budget=float(budget),
        seed=0,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    predicted = automl.predict(test_frame)
    score = (
        accuracy_score(y_test, predicted)
        if task == "classification"
        else r2_score(y_test, predicted)
    )
    print(
        json.dumps({"score": float(score), "seconds": seconds, "estimator": automl.best_estimator})
    )


if __name__ == "__main__":
    main(*sys.argv[1:7])
