"""Monitoring through the whole loop: the served model's requests are logged, the watcher
reports the drift of shifted traffic against the training data of the version that served it,
and ground truth sent for logged requests turns into that version's live metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from shared.errors import NotFound
from shared.layout import LATEST, drift_key, feedback_prefix, live_key
from tests.datasets import cancer_frame
from tests.e2e.browser import chromium, find, screenshot
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.helpers import run_for, wait_run, wait_served

SPEC = b"""target: diagnosis
models: [{estimator: logistic_regression}]
monitoring: {sample: 1.0, window_hours: 1, drift_threshold: 0.2}
"""
LABELLED = b"""target: diagnosis
models: [{estimator: logistic_regression}]
monitoring: {sample: 1.0, window_hours: 1, live_threshold: 0.99}
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


def wait_live(stack: Stack, version: int, rows: int) -> dict:
    """The latest live-metric report once `version` has `rows` labelled rows (within 60 s)."""
    deadline, report = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        try:
            report = stack.store.get_json(live_key("labelled", LATEST))
        except NotFound:
            report = None
        if report and report["versions"].get(str(version), {}).get("rows") == rows:
            return dict(report)
        time.sleep(0.5)
    raise AssertionError(f"no live-metric report of {rows} rows within 60 s (last: {report})")


def test_ground_truth_turns_into_the_live_metrics_of_the_version_that_answered(
    watched: Stack,
) -> None:
    frame = cancer_frame()
    watched.store.put_bytes("pipelines/labelled.yaml", LABELLED)
    watched.store.put_bytes("incoming/labelled/data.csv", frame.to_csv(index=False).encode())
    run = wait_run(watched.store, run_for(watched.store, "incoming/labelled/data.csv"))
    assert run["state"] == "succeeded", run["error"]
    version = run["model_version"]
    served = wait_served(watched.settings.serve_url, "labelled", version)

    rows = frame.sample(n=60, random_state=5)
    truth = rows["diagnosis"].tolist()
    predicted: list[str] = []
    for i in range(6):
        batch = rows.drop(columns=["diagnosis"]).iloc[i * 10 : i * 10 + 10]
        answer = requests.post(
            f"{watched.settings.serve_url}/invocations/labelled",
            json={"instances": batch.to_dict(orient="records")},
            headers={"X-Request-Id": f"lab-{i}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        predicted += answer.json()["predictions"]
    # three requests labelled through the service, three by a CSV file dropped in the bucket
    items = [{"request_id": f"lab-{i}", "labels": truth[i * 10 : i * 10 + 10]} for i in range(3)]
    posted = requests.post(
        f"{watched.settings.serve_url}/v2/models/labelled/feedback",
        json={"feedback": items},
        timeout=10,
    )
    assert posted.status_code == 200, posted.text
    csv = "request_id,row,label\n" + "".join(
        f"lab-{i // 10},{i % 10},{truth[i]}\n" for i in range(30, 60)
    )
    watched.store.put_bytes(f"{feedback_prefix('labelled')}truth.csv", csv.encode())

    entry = wait_live(watched, version, 60)["versions"][str(version)]
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / 60
    assert entry["live"]["accuracy"] == pytest.approx(accuracy)
    assert entry["test"]["accuracy"] == served["metrics"]["accuracy"]
    assert entry["below"] == (entry["live"][entry["metric"]] < 0.99)
    scraped = requests.get(f"{watched.settings.serve_url}/metrics", timeout=10).text
    gauge = f'cauce_live_metric{{metric="accuracy",pipeline="labelled",version="{version}"}}'
    (line,) = [m for m in scraped.splitlines() if m.startswith(gauge)]
    assert float(line.split()[-1]) == pytest.approx(accuracy)
