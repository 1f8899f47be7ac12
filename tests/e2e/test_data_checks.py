"""Data checks on a new drop, through the whole stack: a drop compared with the data the
production model was trained on fails or warns as the spec's `validation` section says."""

from __future__ import annotations

import html

import requests

from tests.datasets import cancer_frame
from tests.e2e.browser import chromium, find, screenshot
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run

PIPELINE = "checked"
SPEC = "target: diagnosis\nmodels: [{estimator: logistic_regression}]\n"
MISSING = (
    "column 'mean_radius' is missing from this drop but the production model (v1) was trained "
    "with it"
)


def _drop(stack: Stack, name: str, content: bytes, validation: str = "") -> dict:
    """Set the spec, drop the file and return its run once it has ended."""
    stack.store.put_bytes(f"pipelines/{PIPELINE}.yaml", (SPEC + validation).encode())
    key = f"incoming/{PIPELINE}/{name}"
    stack.store.put_bytes(key, content)
    return wait_run(stack.store, run_for(stack.store, key))


def test_a_drop_unlike_the_production_models_data_fails_or_warns_as_the_spec_says(
    stack: Stack,
) -> None:
    frame = cancer_frame()
    first = _drop(stack, "first.csv", frame.to_csv(index=False).encode())
    assert first["state"] == "succeeded" and first["model_version"] == 1, first["error"]
    assert first["warnings"] == []

    shifted = frame.assign(mean_texture=frame.mean_texture + 15)
    drifted = _drop(
        stack, "shifted.csv", shifted.to_csv(index=False).encode(), "validation: {max_drift: 0.25}"
    )
    assert drifted["state"] == "failed"
    assert drifted["error"].startswith(
        "ingest: feature 'mean_texture' has shifted from the training data of the production "
        "model (v1): population stability index "
    ), drifted["error"]
    assert "over validation.max_drift 0.25" in drifted["error"]
    assert "mean_radius" not in drifted["error"]  # the rest of the table is as it was
    page = requests.get(f"{stack.settings.console_url}/runs/{drifted['run_id']}", timeout=10)
    assert '<tr data-feature="mean_texture"><td>mean_texture</td>' in page.text
    assert "over 0.25" in page.text

    no_radius = frame.drop(columns=["mean_radius"]).to_csv(index=False).encode()
    failed = _drop(stack, "no-radius.csv", no_radius, "validation: {on_schema_change: fail}")
    assert failed["state"] == "failed"
    assert failed["error"] == (
        f"ingest: {MISSING}. Fix the file, or set validation.on_schema_change: warn in the spec "
        "to train anyway"
    )
    run_id = failed["run_id"]
    assert stack.store.exists(f"incoming/{PIPELINE}/no-radius.csv")  # kept, as for any bad data
    assert stack.store.exists(f"quarantine/{PIPELINE}/{run_id}/no-radius.csv")
    reason = stack.store.get_json(f"quarantine/{PIPELINE}/{run_id}/reason.json")
    assert MISSING in reason["error"]
    assert MISSING in stack.cli("run", run_id, check=False).stdout

    warned = _drop(stack, "no-radius-again.csv", no_radius, "validation: {on_schema_change: warn}")
    assert warned["state"] == "succeeded", warned["error"]
    shown = stack.cli_json("run", warned["run_id"])
    assert shown["warnings"] == [MISSING]
    assert f"warning: {MISSING}" in stack.cli("run", warned["run_id"]).stdout
    listed = stack.cli("runs", "--pipeline", PIPELINE).stdout.splitlines()
    assert listed[-1].startswith(warned["run_id"]) and listed[-1].endswith("[1 data warning]")

    page = requests.get(f"{stack.settings.console_url}/runs/{warned['run_id']}", timeout=10)
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Data checks warn." in text and MISSING in text
    assert "Compared with the training data of production v1" in text
    assert "missing mean_radius" in text
    with chromium() as browser:
        browser.get(f"{stack.settings.console_url}/runs/{warned['run_id']}")
        assert MISSING in find(browser, "#run-warnings").text
        assert "missing mean_radius" in find(browser, "#checks-summary").text
        screenshot(browser, "console-data-checks")
