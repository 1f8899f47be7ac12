"""Small helpers the end-to-end tests share: find a drop's run and wait for it to end."""

from __future__ import annotations

import time
from typing import Any

import requests

from shared.errors import TransientError
from shared.runs import describe_run, is_terminal, read_run
from shared.storage import Store


def run_for(store: Store, key: str, *, timeout: float = 60) -> str:
    """The id of the run the watcher started for the object at `key`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_id in store.children("runs/"):
            if read_run(store, run_id)["source"]["key"] == key:
                return run_id
        time.sleep(0.3)
    raise AssertionError(f"no run started for {key} within {timeout}s")


def wait_run(store: Store, run_id: str, *, timeout: float = 300) -> dict[str, Any]:
    """The run once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            view = describe_run(store, run_id)
        except TransientError:  # the store itself is what a fault test took away
            time.sleep(0.5)
            continue
        if is_terminal(view):
            return view
        time.sleep(0.3)
    raise AssertionError(
        f"run {run_id} did not end within {timeout}s: {describe_run(store, run_id)}"
    )


def wait_served(url: str, pipeline: str, version: int, *, timeout: float = 30) -> dict[str, Any]:
    """The model metadata once the prediction service serves `version` of `pipeline`."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{url}/v2/models/{pipeline}", timeout=5)
        except requests.Timeout:  # a worker loading a skops model first imports scikit-learn
            continue
        if response.status_code == 200:
            body = response.json()
            if str(version) in [str(v) for v in body.get("versions", [])]:
                return body
        time.sleep(0.2)
    raise AssertionError(f"{pipeline} v{version} not served within {timeout}s (last: {body})")
