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
from tests.e2e.browser import chromium, find, screenshot
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


def wait_report(stack: Stack, version: int, rows: int) -> dict:
    """The latest drift report once it counts `rows` logged rows of `version` (within 60 s)."""
    deadline, report = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        try:
            report = stack.store.get_json(drift_key("watched", "latest"))
        except NotFound:
            report = None
        if report and report["versions"].get(str(version), {}).get("rows") == rows:
            time.sleep(6)  # a few more reports for the page's chart
            return dict(stack.store.get_json(drift_key("watched", "latest")))
        time.sleep(0.5)
    raise AssertionError(f"no drift report of {rows} rows within 60 s (last: {report})")


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

    # First traffic like the training data, then shifted traffic: the reports follow.
    features = frame.drop(columns=["diagnosis"])
    usual = features.sample(n=200, random_state=3)
    shifted = features.sample(n=200, random_state=4)
    shifted["clinic"] = "north"
    shifted["mean_radius"] = shifted["mean_radius"] * 1.3
    url = f"{watched.settings.serve_url}/invocations/watched"
    for rows, total in ((usual, 200), (shifted, 400)):
        for start in range(0, len(rows), 20):
            batch = rows.iloc[start : start + 20].to_dict(orient="records")
            assert requests.post(url, json={"instances": batch}, timeout=10).status_code == 200
        report = wait_report(watched, version, total)
        if total == 200:
            assert report["versions"][str(version)]["over"] == [], report
    entry = report["versions"][str(version)]
    assert entry["rows"] == 400, entry
    assert "clinic" in entry["over"] and entry["drift"]["mean_texture"] < 0.2, entry
    assert "prediction" in entry["drift"]

    # The console's drift page: the worst feature first, over time, with the version's figures.
    page = requests.get(f"{watched.settings.console_url}/models/watched/drift", timeout=10)
    assert page.status_code == 200, page.text
    assert f"Drift of watched v{version}" in page.text
    with chromium() as browser:
        browser.get(f"{watched.settings.console_url}/models/watched/drift")
        first = find(browser, "#drift-table tbody tr:first-child")
        assert first.get_attribute("data-feature") in entry["over"]
        assert "over the threshold" in first.text
        assert "The worst features over time" in find(browser, ".plots").text
        screenshot(browser, "console-drift")
