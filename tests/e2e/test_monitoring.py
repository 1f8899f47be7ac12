"""Monitoring through the whole loop: the served model's requests are logged, and the watcher
reports the drift of shifted traffic against the training data of the version that served it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from shared.errors import NotFound
from shared.layout import drift_key
from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.helpers import run_for, wait_run, wait_served

SPEC = b"""target: diagnosis
models: [{estimator: logistic_regression}]
monitoring: {sample: 1.0, window_hours: 1, drift_threshold: 0.2}
"""


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose watcher measures drift every 2 s and whose service logs every 0.5 s."""
    with running_stack(
        tmp_path_factory.mktemp("cauce-home"),
        CAUCE_MONITOR_SECONDS="2",
        CAUCE_PREDICTION_LOG_SECONDS="0.5",
    ) as running:
        yield running


def test_shifted_traffic_is_reported_as_drift_of_the_version_that_served_it(
    watched: Stack,
) -> None:
    frame = cancer_frame()
    watched.store.put_bytes("pipelines/watched.yaml", SPEC)
    watched.store.put_bytes("incoming/watched/data.csv", frame.to_csv(index=False).encode())
    run = wait_run(watched.store, run_for(watched.store, "incoming/watched/data.csv"))
    assert run["state"] == "succeeded", run["error"]
    version = run["model_version"]
    wait_served(watched.settings.serve_url, "watched", version)

    shifted = frame.drop(columns=["diagnosis"]).sample(n=300, random_state=3)
    shifted["clinic"] = "north"
    url = f"{watched.settings.serve_url}/invocations/watched"
    for start in range(0, len(shifted), 20):
        rows = shifted.iloc[start : start + 20].to_dict(orient="records")
        assert requests.post(url, json={"instances": rows}, timeout=10).status_code == 200

    deadline, report = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        try:
            report = watched.store.get_json(drift_key("watched", "latest"))
        except NotFound:
            report = None
        if report and report["versions"].get(str(version), {}).get("rows") == 300:
            break
        time.sleep(0.5)
    assert report is not None, "no drift report within 60 s"
    entry = report["versions"][str(version)]
    assert entry["rows"] == 300, entry
    assert "clinic" in entry["over"] and entry["drift"]["mean_radius"] < 0.2, entry
    assert "prediction" in entry["drift"]
