"""Workers that die or are stopped mid-stage lose nothing; a task that kills every worker fails."""

from __future__ import annotations

import os
import signal
import time

import pytest

from shared.pipeline import STAGES
from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run, wait_served
from tests.faults.conftest import busy_worker, kill_worker

DATA = cancer_frame().to_csv(index=False).encode()


def _drop(stack: Stack, pipeline: str) -> str:
    stack.store.put_bytes(f"pipelines/{pipeline}.yaml", b"target: diagnosis\n")
    stack.store.put_bytes(f"incoming/{pipeline}/data.csv", DATA)
    return run_for(stack.store, f"incoming/{pipeline}/data.csv")


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_of_the_worker_running_a_stage_loses_nothing(stack: Stack, stage: str) -> None:
    pipeline = f"kill-{stage}"
    run_id = _drop(stack, pipeline)
    kill_worker(busy_worker(stack, run_id, stage))  # after its artifacts, before its status

    run = wait_run(stack.store, run_id, timeout=180)
    assert run["state"] == "succeeded", run["error"]
    status = stack.store.get_json(f"runs/{run_id}/{stage}/status.json")
    assert status.get("interrupted") == 1 and status["attempts"] == 2, str(status)
    versions = stack.cli_json("models", pipeline)
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, ["production"])]
    served = wait_served(stack.settings.serve_url, pipeline, 1)
    assert served["run_id"] == run_id


def test_sigterm_lets_a_busy_worker_finish_its_task(stack: Stack) -> None:
    run_id = _drop(stack, "sigterm")
    os.kill(busy_worker(stack, run_id, "preprocess"), signal.SIGTERM)  # as `docker stop` does
    run = wait_run(stack.store, run_id, timeout=180)
    assert run["state"] == "succeeded", run["error"]
    status = stack.store.get_json(f"runs/{run_id}/preprocess/status.json")
    assert status["attempts"] == 1 and status["interrupted"] == 0  # finished, not redone


def test_a_task_that_kills_every_worker_fails_its_run_and_the_queue_serves_others(
    stack: Stack,
) -> None:
    run_id = _drop(stack, "poison")
    limit = stack.settings.max_redeliveries
    killed_at = 0.0
    for _ in range(limit + 1):  # every worker that picks the stage up dies with it
        kill_worker(busy_worker(stack, run_id, "evaluate", timeout=120, after=killed_at))
        killed_at = time.time()
    run = wait_run(stack.store, run_id, timeout=120)
    assert run["state"] == "failed"
    assert f"gave up after the worker stopped {limit + 1} times" in run["error"]
    assert run["error"].startswith("evaluate: ")

    time.sleep(1)
    other = wait_run(stack.store, _drop(stack, "after-poison"), timeout=180)
    assert other["state"] == "succeeded", other["error"]
