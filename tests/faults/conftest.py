"""A stack for fault tests: every stage held two seconds before its status, quick recovery."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, running_stack

# The workers import startup/sitecustomize.py, which holds every stage this long after its work.
STARTUP = Path(__file__).resolve().parent / "startup"
DELAY = "2"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`cauce up` with the fault-injection delay and a 4-second staleness threshold."""
    home = tmp_path_factory.mktemp("faults")
    path = os.pathsep.join(p for p in (str(STARTUP), os.environ.get("PYTHONPATH")) if p)
    hook = {"PYTHONPATH": path, "FAULTS_STAGE_DELAY": DELAY}
    with running_stack(home, CAUCE_STALE_SECONDS="4", **hook) as running:
        yield running


def busy_worker(
    stack: Stack, run_id: str, stage: str, *, timeout: float = 60, after: float = 0.0
) -> int:
    """The pid of the Celery worker (not its pool child) running `stage` of the run, as seen
    from a heartbeat newer than `after` (epoch seconds)."""
    key = f"runs/{run_id}/{stage}/heartbeat.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(stack, run_id, stage)
        beat = stack.store.get_json(key) if stack.store.exists(key) else {"at": 0}
        if status.get("state") == "running" and beat["at"] > after:
            worker = parent_of(int(beat["worker"].rsplit(":", 1)[1]))
            if worker in workers(stack):
                return worker
        time.sleep(0.05)
    raise AssertionError(f"{stage} of {run_id} was never seen running")


def workers(stack: Stack) -> set[int]:
    """The pids of the stack's supervised processes right now."""
    return {int(path.read_text()) for path in (stack.home / "pids").glob("*.pid")}


def _status(stack: Stack, run_id: str, stage: str) -> dict:
    key = f"runs/{run_id}/{stage}/status.json"
    return stack.store.get_json(key) if stack.store.exists(key) else {}


def parent_of(pid: int) -> int:
    """The parent of a process (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def kill_worker(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal a whole worker (main process and pool), as `docker kill` would."""
    group = os.getpgid(pid)
    assert group == pid > 1, "a supervised worker leads its own process group"
    os.killpg(group, signum)


def supervised(stack: Stack, name: str) -> int:
    """The pid the supervisor runs `name` under now."""
    return int((stack.home / "pids" / f"{name}.pid").read_text())
