"""cauce beyond one machine: a run crosses hosts, and survives a host cut off, the store away and a
worker whose clock is wrong (`make test-hosts`; needs root)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from shared.layout import stage_key, trial_key, trials_prefix, versions_prefix
from shared.trials import trial_objects
from tests.datasets import cancer_frame
from tests.hosts.conftest import SERVE_PORT, Deployment, skewed

pytestmark = pytest.mark.hosts

FRAME = cancer_frame()
CSV = FRAME.to_csv(index=False).encode()

QUICK = """
target: diagnosis
models:
  - estimator: logistic_regression
    search: {C: [0.1, 1.0, 10.0, 100.0]}
tuning: {trials: 4, parallelism: 2, selection: holdout}
"""
# Trials of several seconds each, so that one is surely running when its host is cut off.
SLOW = """
target: diagnosis
models:
  - estimator: random_forest
    search: {n_estimators: [1500], min_samples_leaf: [1, 2, 3, 4]}
tuning: {trials: 4, parallelism: 2, selection: holdout, budget_seconds: 600}
"""


def test_a_drop_runs_across_the_hosts_and_the_front_host_serves_its_model(
    deployment: Deployment,
) -> None:
    run_id = deployment.run_of(deployment.drop("loop", "cancer.csv", CSV, spec=QUICK))
    view = deployment.finished(run_id)
    assert view["state"] == "succeeded", view
    answer = predict(deployment, "loop")
    assert answer["model_version"] == str(view["model_version"])
    (label,) = next(o for o in answer["outputs"] if o["name"] == "predict")["data"]
    assert label in ("benign", "malignant")


def test_a_worker_host_cut_off_mid_trial_loses_nothing_and_repeats_nothing(
    deployment: Deployment,
) -> None:
    run_id = deployment.run_of(deployment.drop("cut", "cancer.csv", CSV, spec=SLOW))
    index = trial_running_on(deployment, run_id, "w1")
    deployment.network.cut("w1")
    try:  # w1 cannot write the result: only another host can
        wait_for(lambda: deployment.store.exists(trial_key(run_id, index)), timeout=90)
    finally:
        deployment.network.restore("w1")
    view = deployment.finished(run_id)
    assert view["state"] == "succeeded", view
    results = [s for i, s, _ in trial_objects(deployment.store, run_id) if s == "json"]
    assert len(results) == 4  # one result per planned trial
    trials = [deployment.store.get_json(trial_key(run_id, i)) for i in range(4)]
    assert [t["state"] for t in trials] == ["succeeded"] * 4
    assert versions_of(deployment, "cut", run_id) == 1
    for stage in ("evaluate", "deploy"):
        assert deployment.store.get_json(stage_key(run_id, stage, "status.json"))["attempts"] == 1


def test_a_run_finishes_after_the_store_host_was_away_for_20_seconds(
    deployment: Deployment,
) -> None:
    run_id = deployment.run_of(deployment.drop("away", "cancer.csv", CSV, spec=QUICK))
    wait_for(lambda: _state(deployment, run_id, "ingest") == "succeeded", timeout=60)
    deployment.network.cut("store")
    try:
        time.sleep(20)
    finally:
        deployment.network.restore("store")
    view = deployment.finished(run_id, timeout=180)
    assert view["state"] == "succeeded", view
    assert versions_of(deployment, "away", run_id) == 1


def test_a_worker_host_whose_clock_is_five_minutes_behind_gets_no_work_sent_twice(
    deployment: Deployment,
) -> None:
    deployment.stop_host("w2")
    deployment.start_workers("w2", **skewed("-5m"))
    run_id = deployment.run_of(deployment.drop("clock", "cancer.csv", CSV, spec=QUICK))
    view = deployment.finished(run_id)
    assert view["state"] == "succeeded", view
    # w2 evaluated it, by a clock five minutes behind the store's.
    key = stage_key(run_id, "evaluate", "status.json")
    started = datetime.fromisoformat(deployment.store.get_json(key)["started"]).timestamp()
    assert deployment.store.modified(key) - started > 250
    log = deployment.log("watcher").read_text()
    assert [
        line for line in log.splitlines() if "recovery: sending" in line and run_id in line
    ] == []


def predict(deployment: Deployment, pipeline: str, *, timeout: float = 30) -> dict[str, Any]:
    """Ask the prediction service on `front` (OIP v2) about the first row, once it serves the
    pipeline's model."""
    row = FRAME.drop(columns=["diagnosis"]).iloc[0]
    inputs = [
        {"name": name, "shape": [1], "datatype": "BYTES", "data": [value]}
        if isinstance(value, str)
        else {"name": name, "shape": [1], "datatype": "FP64", "data": [float(value)]}
        for name, value in row.items()
    ]
    url = f"http://{deployment.network.address('front')}:{SERVE_PORT}/v2/models/{pipeline}/infer"
    request = urllib.request.Request(
        url, json.dumps({"inputs": inputs}).encode(), {"Content-Type": "application/json"}
    )
    deadline, error = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:  # 404 until the service loads the model
            error = f"{exc.code} {exc.read()[:300]!r}"
        time.sleep(0.5)
    raise AssertionError(f"no prediction for {pipeline} within {timeout}s: {error}")


def trial_running_on(deployment: Deployment, run_id: str, host: str) -> int:
    """The index of a trial without a result whose heartbeat comes from a process on `host`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        files = {(i, s) for i, s, _ in trial_objects(deployment.store, run_id)}
        pids = deployment.network.pids(host)
        for index, suffix in files:
            if suffix != "heartbeat" or (index, "json") in files:
                continue
            beat = deployment.store.get_json(trial_key(run_id, index, "heartbeat"))
            if int(beat["worker"].rsplit(":", 1)[1]) in pids:
                return index
        time.sleep(0.2)
    raise AssertionError(
        f"no trial of {run_id} seen running on {host} under {trials_prefix(run_id)}"
    )


def versions_of(deployment: Deployment, pipeline: str, run_id: str) -> int:
    """How many model versions of the pipeline the run registered."""
    keys = [o.key for o in deployment.store.list_objects(versions_prefix(pipeline))]
    found = [deployment.store.get_json(k) for k in keys if k.endswith("/version.json")]
    return sum(1 for v in found if v.get("run_id") == run_id)


def wait_for(check: Any, *, timeout: float) -> None:
    """Poll `check` until it is true (a store that is away counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def _state(deployment: Deployment, run_id: str, stage: str) -> str | None:
    status = deployment.store.get_json(stage_key(run_id, stage, "status.json"))
    return str(status.get("state"))
