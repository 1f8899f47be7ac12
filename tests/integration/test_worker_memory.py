"""A stage worker gives the memory of a heavy task back: its pool process is replaced after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.config import Settings
from shared.messages import RunStage
from shared.messaging import create_celery, send
from shared.pipeline import TASKS
from shared.runs import create_run, read_status
from shared.stack.local import child_env
from shared.storage import Store
from tests.conftest import stop
from tests.datasets import cancer_frame

ROOT = Path(__file__).resolve().parents[2]
# The worker imports memory_startup/sitecustomize.py, which keeps this much alive after each
# stage's work, as a task on a big table leaves a library's cache or a fragmented heap behind.
STARTUP = Path(__file__).resolve().parent / "memory_startup"
KEPT_MB = 300
LIMIT_MB = 250
MIB = 1024 * 1024
RUN = RunStage(run_id="01JMEMORYRUN00000000000000", pipeline="big")


def rss(pid: int) -> int:
    """The resident memory of a process, in bytes, as /proc shows it (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pool(pid: int) -> list[int]:
    """The pool processes (children) of a Celery worker."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def one_pool_process(pid: int, timeout: float = 60) -> int:
    """The worker's pool process once there is exactly one, the same for a second (a starting
    worker may have a short-lived child of another kind)."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        children = pool(pid)
        if len(children) == 1 and rss(children[0]):
            if children[0] == seen:
                return seen
            seen = children[0]
            time.sleep(1)
            continue
        seen = None
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} has no pool process")


@pytest.fixture
def ingest_worker(settings: Settings, tmp_path: Path) -> Iterator[int]:
    """A real ingest worker started as `cauce up` starts it (prefork, one pool process)."""
    limits = {"CAUCE_WORKER_MAX_MEMORY_MB": str(LIMIT_MB), "CAUCE_WORKER_IDLE_RECYCLE_SECONDS": "0"}
    with running_ingest_worker(settings, tmp_path, MEMORY_KEPT_MB=str(KEPT_MB), **limits) as pid:
        yield pid


@contextmanager
def running_ingest_worker(settings: Settings, tmp_path: Path, **extra: str) -> Iterator[int]:
    """The worker's pid, its environment completed with `extra`; stopped after."""
    path = os.pathsep.join(p for p in (str(STARTUP), os.environ.get("PYTHONPATH")) if p)
    env = {**child_env(settings), "PYTHONPATH": path, **extra}
    argv = [sys.executable, "-m", "celery", "-A", "services.ingest.worker", "worker"]
    argv += ["-Q", "ingest", "-c", "1", "-n", "ingest-mem@%h", "--without-gossip"]
    argv += ["--without-mingle", "--loglevel", "INFO"]
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc.pid
    finally:
        stop(proc, timeout=30)


def ingest(store: Store, settings: Settings, run: RunStage) -> None:
    """Start `run` at its ingest stage, on the cancer table."""
    store.put_bytes(
        f"incoming/{run.pipeline}/data.csv", cancer_frame().to_csv(index=False).encode()
    )
    source = {"key": f"incoming/{run.pipeline}/data.csv"}
    create_run(store, run_id=run.run_id, pipeline=run.pipeline, source=source, spec_text=None)
    send(create_celery(settings, "test"), TASKS["ingest"], run, queue="ingest")


def ingested(store: Store, run: RunStage, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (read_status(store, run.run_id, "ingest") or {}).get("state") != "succeeded":
        assert time.monotonic() < deadline, read_status(store, run.run_id, "ingest")
        time.sleep(0.1)


def test_a_workers_memory_is_returned_after_a_large_task(
    store: Store, settings: Settings, ingest_worker: int
) -> None:
    child = one_pool_process(ingest_worker)
    idle = rss(child)
    ingest(store, settings, RUN)

    # The pool process that ran the task, and its peak: whichever pool process grew the most.
    peak, peaked, deadline = idle, child, time.monotonic() + 60

    def sample() -> None:
        nonlocal peak, peaked
        for pid in pool(ingest_worker):
            if (size := rss(pid)) > peak:
                peak, peaked = size, pid

    while (read_status(store, RUN.run_id, "ingest") or {}).get("state") != "succeeded":
        assert time.monotonic() < deadline, read_status(store, RUN.run_id, "ingest")
        sample()
        time.sleep(0.05)
    sample()
    assert peak - idle > KEPT_MB * MIB * 0.9, "the task did not grow its process"

    # Once the task is done, the worker holds about what it held before it, not its peak.
    deadline, held = time.monotonic() + 20, peak
    while held > idle + 100 * MIB and time.monotonic() < deadline:
        time.sleep(0.2)
        held = sum(rss(pid) for pid in pool(ingest_worker)) or peak
    assert held < idle + 100 * MIB, (
        f"the worker's pool still holds {held / MIB:.0f} MiB after the task "
        f"(idle {idle / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB)"
    )
    assert pool(ingest_worker) not in ([], [peaked])  # a fresh pool process took over
    assert rss(ingest_worker) < idle + 100 * MIB  # and the worker itself did not grow


def test_an_idle_worker_replaces_its_pool_process_and_takes_the_next_task(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Below the memory limit, what a task left behind is given back once the worker has been
    idle for CAUCE_WORKER_IDLE_RECYCLE_SECONDS, and the fresh pool process works."""
    limits = {"CAUCE_WORKER_MAX_MEMORY_MB": "0", "CAUCE_WORKER_IDLE_RECYCLE_SECONDS": "3"}
    with running_ingest_worker(settings, tmp_path, MEMORY_KEPT_MB="80", **limits) as pid:
        first = one_pool_process(pid)
        idle = rss(first)
        ingest(store, settings, RUN)
        ingested(store, RUN)
        assert rss(first) > idle + 70 * MIB, "the task did not leave its memory behind"
        deadline = time.monotonic() + 30
        while pool(pid) in ([], [first]) and time.monotonic() < deadline:
            time.sleep(0.2)
        fresh = one_pool_process(pid)
        assert fresh != first, "the idle worker kept its pool process"
        assert rss(fresh) < idle + 40 * MIB
        again = RUN.model_copy(update={"run_id": "01JMEMORYRUN00000000000001", "pipeline": "next"})
        ingest(store, settings, again)
        ingested(store, again)
    log = (tmp_path / "worker.log").read_text()
    assert "replacing the pool's processes" in log, log[-3000:]


ONE_TRIAL = """\
target: diagnosis
task: classification
models:
  - estimator: hist_gradient_boosting
    search: {learning_rate: [0.1]}
tuning: {trials: 1, sampler: grid, parallelism: 1}
"""


def test_the_selection_reuses_the_trials_model_though_each_task_gets_a_new_pool_process(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """With a memory limit every task passes, each task runs in a fresh pool process. The last
    trial then runs the selection itself, so the model it fitted is kept, not fitted again."""
    env = {**child_env(settings), "CAUCE_WORKER_MAX_MEMORY_MB": "1"}
    workers = []
    for stage in ("ingest", "preprocess", "train"):
        argv = [sys.executable, "-m", "celery", "-A", f"services.{stage}.worker", "worker"]
        argv += ["-Q", stage, "-c", "1", "-n", f"{stage}-reuse@%h", "--without-gossip"]
        argv += ["--without-mingle", "--loglevel", "INFO"]
        with (tmp_path / f"{stage}.log").open("wb") as log:
            workers.append(
                subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )
    run = RunStage(run_id="01JREUSERUN000000000000000", pipeline="reuse")
    try:
        store.put_bytes("incoming/reuse/data.csv", cancer_frame().to_csv(index=False).encode())
        source = {"key": "incoming/reuse/data.csv"}
        create_run(
            store, run_id=run.run_id, pipeline=run.pipeline, source=source, spec_text=ONE_TRIAL
        )
        send(create_celery(settings, "test"), TASKS["ingest"], run, queue="ingest")
        deadline = time.monotonic() + 120
        while (read_status(store, run.run_id, "train") or {}).get("state") != "succeeded":
            state = read_status(store, run.run_id, "train") or {}
            assert state.get("state") != "failed", state
            earlier = [read_status(store, run.run_id, s) for s in ("ingest", "preprocess")]
            assert time.monotonic() < deadline, earlier
            time.sleep(0.2)
    finally:
        for worker in workers:
            stop(worker, timeout=30)
    log = (tmp_path / "train.log").read_text()
    assert log.count("succeeded in") >= 2, log[-3000:]  # the plan and the trial, at least
    assert "selection reuses trial 0's fitted hist_gradient_boosting" in log, log[-3000:]
