"""Tuning speed-up with train workers: `make bench-tuning`.

Runs the same 40-trial search (random forest, random sampler, all 40 trials allowed in flight)
on the same generated dataset twice: on a local stack with one train worker, then with two.
Trials per minute come from the train stage's own start and end (planning, every trial, selection
and the refit of the best); the last line is the speed-up.
"""

from __future__ import annotations

import time

import pandas as pd
from sklearn.datasets import make_classification

from bench.stack import local_stack, machine
from shared.layout import drop_key, spec_key
from shared.runs import describe_run, is_terminal, read_run
from shared.storage import Store

TRIALS = 40
SPEC = f"""target: label
models:
  - estimator: random_forest
    search: {{n_estimators: {{int: [60, 160]}}, max_depth: [6, 10, 14, null],
              min_samples_leaf: {{int: [1, 8]}}}}
tuning: {{trials: {TRIALS}, parallelism: {TRIALS}, sampler: random}}
"""


def dataset() -> bytes:
    """4,000 rows, 20 features, two classes: a search whose trials take about a second each."""
    X, y = make_classification(n_samples=4000, n_features=20, n_informative=8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]).assign(label=y)
    return frame.to_csv(index=False).encode()


def search_seconds(store: Store, pipeline: str) -> float:
    """Drop the dataset and return the train stage's seconds once the run has ended."""
    store.put_bytes(spec_key(pipeline), SPEC.encode())
    key = drop_key(pipeline, "data.csv")
    store.put_bytes(key, dataset())
    run_id = None
    while run_id is None:
        time.sleep(0.2)
        run_id = next(
            (r for r in store.children("runs/") if read_run(store, r)["source"]["key"] == key), None
        )
    view = describe_run(store, run_id)
    while not is_terminal(view):
        time.sleep(0.5)
        view = describe_run(store, run_id)
    assert view["state"] == "succeeded", view["error"]
    return float(view["stages"][2]["seconds"])


def main() -> None:
    """Measure with one and with two train workers and print the table and the speed-up."""
    seconds = {}
    for workers in (1, 2):
        with local_stack(train=workers) as (store, _):
            seconds[workers] = search_seconds(store, f"tuning-{workers}")
    print(f"\nmachine: {machine()}; {TRIALS} trials, 4,000 rows x 20 features\n")
    print("| train workers | search seconds | trials per minute |\n|---|---|---|")
    for workers, value in seconds.items():
        print(f"| {workers} | {value:.1f} | {TRIALS / value * 60:.1f} |")
    print(f"tuning speed-up, 2 vs 1 train workers: {seconds[1] / seconds[2]:.2f}")


if __name__ == "__main__":
    main()
