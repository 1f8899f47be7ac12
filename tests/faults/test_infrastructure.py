"""The broker or the object store going away mid-run: every started run still ends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import redis

from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run
from tests.faults.conftest import supervised

DATA = cancer_frame().to_csv(index=False).encode()


def _drop(stack: Stack, pipeline: str, name: str = "data.csv") -> str:
    stack.store.put_bytes(f"pipelines/{pipeline}.yaml", b"target: diagnosis\n")
    stack.store.put_bytes(f"incoming/{pipeline}/{name}", DATA)
    return run_for(stack.store, f"incoming/{pipeline}/{name}")


def _stage_running(stack: Stack, run_id: str, stage: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    key = f"runs/{run_id}/{stage}/status.json"
    while time.monotonic() < deadline:
        if stack.store.exists(key) and stack.store.get_json(key)["state"] == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"{stage} never ran")


def test_a_broker_restarted_without_its_data_loses_no_run(stack: Stack) -> None:
    before = _drop(stack, "broker-before")
    wait_run(stack.store, before)
    run_id = _drop(stack, "broker-loss")
    _stage_running(stack, run_id, "preprocess")
    # Lose everything the broker held: its queues, the ledger of drops, the locks.
    shutil.rmtree(stack.home / "data" / "redis")
    (stack.home / "data" / "redis").mkdir()
    os.kill(supervised(stack, "broker"), signal.SIGKILL)

    run = wait_run(stack.store, run_id, timeout=180)
    assert run["state"] == "succeeded", run["error"]
    # The drops that were already runs did not start again when the ledger was rebuilt.
    runs = stack.cli_json("runs")
    assert sorted(r["source"] for r in runs).count("incoming/broker-loss/data.csv") == 1
    assert sorted(r["source"] for r in runs).count("incoming/broker-before/data.csv") == 1
    after = wait_run(stack.store, _drop(stack, "broker-after"), timeout=180)
    assert after["state"] == "succeeded", after["error"]


def test_the_object_store_away_for_20_seconds_mid_stage(stack: Stack) -> None:
    run_id = _drop(stack, "s3-outage")
    _stage_running(stack, run_id, "preprocess")
    supervisor = json.loads((stack.home / "state.json").read_text())["supervisor"]
    os.kill(supervisor, signal.SIGSTOP)  # so that nothing restarts the store before 20 s
    try:
        os.kill(supervised(stack, "s3"), signal.SIGKILL)
        time.sleep(20)
    finally:
        os.kill(supervisor, signal.SIGCONT)

    run = wait_run(stack.store, run_id, timeout=240)
    assert run["state"] == "succeeded", run["error"]
    logs = "".join(p.read_text() for p in (stack.home / "logs").glob("*-1.log"))
    retries = [line for line in logs.splitlines() if run_id in line and "retry in" in line]
    assert retries, "no stage had to retry: the outage did not hit the run"
    assert [v["version"] for v in stack.cli_json("models", "s3-outage")] == [1]


def test_malformed_messages_are_dropped_and_the_queue_keeps_working(stack: Stack) -> None:
    broker = redis.Redis.from_url(stack.settings.broker_url)
    broker.lpush("ingest", b"this is not a message")
    broker.lpush("ingest", json.dumps({"body": "e30=", "headers": {}}).encode())
    from shared.messaging import create_celery

    app = create_celery(stack.settings, "test")
    app.send_task("ingest.run", kwargs={"run_id": "../../etc", "pipeline": "x"}, queue="ingest")
    app.send_task("ingest.run", kwargs={"bogus": True}, queue="ingest")

    run = wait_run(stack.store, _drop(stack, "after-garbage"), timeout=180)
    assert run["state"] == "succeeded", run["error"]
    log = (stack.home / "logs" / "ingest-1.log").read_text()
    assert log.count("dropping malformed ingest message") >= 2
    assert broker.llen("ingest") == 0
