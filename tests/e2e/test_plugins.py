"""A user's own feature step and estimator, from an installed plugin, through the whole loop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from shared.stack.servers import free_port, http_answers
from tests.conftest import stop, wait_until
from tests.datasets import diabetes_frame
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.helpers import run_for, wait_run, wait_served
from tests.plugin_site import install_example_plugin
from tests.unit.test_plugins import RATIO_SPEC, ratio_frame

RECORD = {
    "kind": "feature",
    "name": "example.ratio",
    "package": "cauce-example-plugin",
    "version": "0.1.0",
}


@pytest.fixture(scope="module")
def plugged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose every process has the example plugin installed."""
    site = install_example_plugin(tmp_path_factory.mktemp("plugin"))
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    with running_stack(tmp_path_factory.mktemp("cauce-home"), PYTHONPATH=path) as running:
        yield running


def drop(stack: Stack, pipeline: str, spec: str, body: bytes, name: str = "data.csv") -> dict:
    stack.store.put_bytes(f"pipelines/{pipeline}.yaml", spec.encode())
    key = f"incoming/{pipeline}/{name}"
    stack.store.put_bytes(key, body)
    return wait_run(stack.store, run_for(stack.store, key))


def predict(url: str, pipeline: str, rows: list[dict]) -> requests.Response:
    return requests.post(f"{url}/invocations/{pipeline}", json={"instances": rows}, timeout=10)


def test_a_feature_step_is_fitted_saved_with_skops_and_served(plugged: Stack) -> None:
    frame = ratio_frame()
    run = drop(plugged, "ratios", RATIO_SPEC, frame.to_csv(index=False).encode())
    assert run["state"] == "succeeded", run["error"]
    assert run["metrics"]["r2"] > 0.99  # the ratio itself is a feature: a line fits it
    version = plugged.store.get_json(f"models/ratios/versions/{run['model_version']}/version.json")
    assert version["plugins"] == [RECORD]
    assert version["runtime"] == "skops"
    assert version["runtime_reason"] == (
        "no ONNX export: plugin example.ratio declares no ONNX converter"
    )
    models = plugged.cli("models", "ratios").stdout
    assert "served by skops: no ONNX export: plugin example.ratio declares" in models
    page = requests.get(f"{plugged.settings.console_url}/models/ratios", timeout=10).text
    assert "plugins: example.ratio (cauce-example-plugin 0.1.0)" in page

    wait_served(plugged.settings.serve_url, "ratios", run["model_version"], timeout=60)
    rows = [{"spend": 50.0, "visits": 5, "city": "a"}, {"spend": 12.0, "visits": 4, "city": "b"}]
    answer = predict(plugged.settings.serve_url, "ratios", rows)
    assert answer.status_code == 200, answer.text
    assert np.allclose(answer.json()["predictions"], [100.0, 30.0], rtol=0.05)


def test_a_plugin_estimator_with_a_converter_is_served_through_onnx(plugged: Stack) -> None:
    frame = diabetes_frame()
    spec = "models: [{estimator: example.robust}]\ntuning: {trials: 3}\n"
    run = drop(plugged, "robust", spec, frame.to_csv(index=False).encode())
    assert run["state"] == "succeeded", run["error"]
    assert run["metrics"]["r2"] > 0.3
    version = plugged.store.get_json(f"models/robust/versions/{run['model_version']}/version.json")
    assert version["estimator"] == "example.robust"
    assert version["plugins"] == [{**RECORD, "kind": "estimator", "name": "example.robust"}]
    assert (version["runtime"], version["onnx"]["passed"]) == ("onnx", True), version["onnx"]

    wait_served(plugged.settings.serve_url, "robust", run["model_version"])
    rows = frame.drop(columns=["progression"]).head(3).to_dict(orient="records")
    answer = predict(plugged.settings.serve_url, "robust", rows)
    assert answer.status_code == 200, answer.text
    assert all(25 <= value <= 346 for value in answer.json()["predictions"])


def test_a_name_that_is_not_installed_fails_the_run_at_ingest(plugged: Stack) -> None:
    spec = "models: [{estimator: acme.margin_model}]\n"
    run = drop(plugged, "unknown", spec, diabetes_frame().to_csv(index=False).encode())
    assert run["state"] == "failed" and run["error"].startswith("ingest: "), run
    assert "no installed estimator 'acme.margin_model'" in run["error"]
    assert "installed plugin estimators: example.robust" in run["error"]
    assert plugged.store.exists("incoming/unknown/data.csv")  # the file is kept

    spec = "features: {steps: [{use: example.ratio, params: {numerator: spend, denom: x}}]}\n"
    run = drop(plugged, "badparams", spec, ratio_frame().to_csv(index=False).encode())
    assert run["state"] == "failed" and run["error"].startswith("ingest: "), run
    assert "features.steps[0].params" in run["error"] and "denominator" in run["error"]


def test_a_service_without_the_plugin_refuses_its_model_and_keeps_the_last(
    plugged: Stack, tmp_path: Path
) -> None:
    env = {k: v for k, v in plugged.env.items() if k != "PYTHONPATH"}
    port = free_port()
    env.update(CAUCE_SERVE_PORT=str(port), WEB_CONCURRENCY="1")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        bare = subprocess.Popen(
            [sys.executable, "-m", "services.serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_answers(f"{url}/v2/health/live"), "the service started", log)
        frame = ratio_frame()
        body = frame.to_csv(index=False).encode()
        first = drop(plugged, "guarded", "models: [{estimator: ridge}]\n", body, "one.csv")
        assert first["state"] == "succeeded" and first["promoted"], first
        wait_served(url, "guarded", first["model_version"], timeout=60)
        # The same rows with the ratio step: a far better model, promoted.
        second = drop(plugged, "guarded", RATIO_SPEC, body + b"\n", "two.csv")
        assert second["state"] == "succeeded" and second["promoted"], second
        wait_served(plugged.settings.serve_url, "guarded", second["model_version"], timeout=60)

        def refused() -> bool:
            errors = requests.get(f"{url}/v2/health/ready", timeout=5).json()["errors"]
            return "guarded" in errors

        wait_until(refused, "the service without the plugin did not refuse v2", log)
        status = requests.get(f"{url}/v2/health/ready", timeout=5).json()
        assert status["models"]["guarded"] == first["model_version"]
        assert status["errors"]["guarded"].startswith(
            f"v{second['model_version']}: this model needs plugins that are not installed here: "
            "example.ratio (package cauce-example-plugin)"
        )
        rows = [{"spend": 50.0, "visits": 5, "city": "a"}]
        answer = predict(url, "guarded", rows)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Model-Version"] == str(first["model_version"])
        plugged_answer = predict(plugged.settings.serve_url, "guarded", rows)
        assert plugged_answer.headers["X-Model-Version"] == str(second["model_version"])
        assert "the previous model keeps serving" in log.read_text()
    finally:
        stop(bare)
