"""Drop-to-served seconds for the demo dataset, per stage: `make bench`.

Starts a local stack in a temporary CAUCE_HOME on free ports, drops examples/churn.csv through S3
under a new pipeline name each repetition (so every run deploys and is served), and reports the
median of: the watcher's pickup, each stage's own seconds, the queue hand-offs between stages,
the prediction service's pickup, and the whole drop-to-served time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import requests

from bench.stack import local_stack, machine
from shared.pipeline import STAGES
from shared.runs import describe_run, is_terminal, read_run
from shared.storage import Store

DATA = Path(__file__).resolve().parent.parent / "examples" / "churn.csv"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def measure_once(store: Store, serve_url: str, pipeline: str) -> dict[str, float]:
    """Drop the file once and time every step until the model answers."""
    key = f"incoming/{pipeline}/churn.csv"
    dropped = time.time()
    store.put_bytes(key, DATA.read_bytes())
    run_id = None
    while run_id is None:
        run_id = next(
            (r for r in store.children("runs/") if read_run(store, r)["source"]["key"] == key), None
        )
        time.sleep(0.05)
    view = describe_run(store, run_id)
    while not is_terminal(view):
        time.sleep(0.05)
        view = describe_run(store, run_id)
    assert view["state"] == "succeeded", view["error"]
    while True:
        response = requests.get(f"{serve_url}/v2/models/{pipeline}", timeout=5)
        if response.ok:
            break
        time.sleep(0.05)
    served = time.time()
    stages = {s["stage"]: s for s in view["stages"]}
    result = {"watcher pickup": _ts(stages["ingest"]["started"]) - dropped}
    for stage in STAGES:
        result[stage] = stages[stage]["seconds"]
    result["queue hand-offs"] = sum(
        _ts(stages[b]["started"]) - _ts(stages[a]["finished"]) for a, b in pairwise(STAGES)
    )
    result["serve pickup"] = served - _ts(stages["deploy"]["finished"])
    result["drop to served"] = served - dropped
    return result


def main() -> None:
    """Run the benchmark and print a table of medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_stack() as (store, settings):
        rows = [measure_once(store, settings.serve_url, f"bench-{i}") for i in range(args.repeat)]
    print(
        f"\nmachine: {machine()}; dataset: {DATA.name} ({DATA.stat().st_size:,} bytes); "
        f"{args.repeat} runs, medians; default polls (watcher 1 s, prediction service 2 s)\n"
    )
    print("| step | seconds (median) | min | max |\n|---|---|---|---|")
    for name in rows[0]:
        values = [row[name] for row in rows]
        print(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
