"""A drop replaced while its run waits for a busy ingest: each version of the file is its own
run, trained on exactly its own bytes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest

from shared.runs import read_run, read_status
from shared.storage import Store
from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.helpers import run_for, wait_run
from tests.faults.conftest import STARTUP

FRAME = cancer_frame()
FIRST = FRAME.iloc[:400].to_csv(index=False).encode()
SECOND = FRAME.iloc[169:].to_csv(index=False).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`cauce up` whose stages are each held four seconds after their work: long enough to
    replace a file while its run waits behind a busy ingest."""
    home = tmp_path_factory.mktemp("drops")
    path = os.pathsep.join(p for p in (str(STARTUP), os.environ.get("PYTHONPATH")) if p)
    with running_stack(home, PYTHONPATH=path, FAULTS_STAGE_DELAY="4") as running:
        yield running


def _run_of(store: Store, key: str, etag: str, *, timeout: float = 60) -> str:
    """The id of the run the watcher started for this version (ETag) of the object at `key`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_id in store.children("runs/"):
            source = read_run(store, run_id)["source"]
            if (source["key"], source["etag"]) == (key, etag):
                return run_id
        time.sleep(0.2)
    raise AssertionError(f"no run started for {key} {etag} within {timeout}s")


def _wait_state(store: Store, run_id: str, stage: str, state: str) -> None:
    deadline = time.monotonic() + 60
    while (read_status(store, run_id, stage) or {}).get("state") != state:
        assert time.monotonic() < deadline, f"{stage} of {run_id} never {state}"
        time.sleep(0.1)


def test_a_file_replaced_before_ingest_reads_it_is_a_drop_of_its_own(stack: Stack) -> None:
    store = stack.store
    for pipeline in ("replaced", "hold"):
        store.put_bytes(f"pipelines/{pipeline}.yaml", b"target: diagnosis\n")
    store.put_bytes("incoming/hold/data.csv", FIRST)  # keeps the one ingest worker busy
    _wait_state(store, run_for(store, "incoming/hold/data.csv"), "ingest", "running")

    key = "incoming/replaced/x.csv"
    first_etag = store.put_bytes(key, FIRST)
    first = _run_of(store, key, first_etag)
    second_etag = store.put_bytes(key, SECOND)  # the same key, before ingest reads the first
    assert read_status(store, first, "ingest") is None, "ingest read the file too early"
    second = _run_of(store, key, second_etag)

    views = [wait_run(store, run_id, timeout=300) for run_id in (first, second)]
    for view, data in zip(views, (FIRST, SECOND), strict=True):
        assert view["state"] == "succeeded", view["error"]
        assert view["duplicate_of"] is None and view["model_version"] is not None
        assert view["dataset_sha256"] == hashlib.sha256(data).hexdigest()
    assert read_run(store, first)["source"]["etag"] == first_etag
    versions = {v["version"]: v for v in stack.cli_json("models", "replaced")}
    lineage = {versions[view["model_version"]]["run_id"] for view in views}
    assert lineage == {first, second}
