"""The local stack's lifecycle: a dead process comes back, and data survives `down` then `up`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.datasets import diabetes_frame
from tests.e2e.conftest import CAUCE, Stack, running_stack
from tests.e2e.helpers import run_for, wait_run, wait_served


def _process(stack_status: dict, name: str) -> dict:
    return next(p for p in stack_status["processes"] if p["name"] == name)


def test_dead_processes_restart_and_data_survives_down_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_stack(home, XDG_CACHE_HOME=str(tmp_path / "cache")) as stack:
        _found_from_another_directory(stack, tmp_path / "elsewhere")
        stack.store.put_bytes(
            "incoming/keep/data.csv", diabetes_frame().to_csv(index=False).encode()
        )
        run = wait_run(stack.store, run_for(stack.store, "incoming/keep/data.csv"))
        assert run["state"] == "succeeded", run["error"]

        victim = _process(stack.cli_json("status"), "train-1")
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _process(stack.cli_json("status"), "train-1")
            if now["pid"] != victim["pid"] and now["healthy"]:
                break
            time.sleep(0.5)
        assert now["pid"] != victim["pid"] and now["healthy"] and now["restarts"] == 1

        down = stack.cli("down")
        assert "stopped" in down.stdout
        assert stack.cli("status", check=False).returncode == 1
        assert not any(_alive(p["pid"]) for p in _pids(home))

    rows = tmp_path / "rows.csv"
    diabetes_frame().drop(columns="progression").head(3).to_csv(rows, index=False)
    with running_stack(home) as again:  # same CAUCE_HOME, new ports: the data is still there
        # Predictions answer as soon as `cauce up` returns, whichever serving worker takes them.
        for _ in range(6):
            answer = json.loads(again.cli("predict", "keep", "--data", str(rows)).stdout)
            assert len(answer["predictions"]) == 3
        runs = again.cli_json("runs")
        assert [(r["run_id"], r["state"]) for r in runs] == [(run["run_id"], "succeeded")]
        wait_served(again.settings.serve_url, "keep", 1)
        assert again.store.exists("incoming/keep/data.csv")
        time.sleep(1.5)  # several watcher scans: the old drop must not start a second run
        assert len(again.cli_json("runs")) == 1

        # The supervisor killed outright (kill -9, the OOM killer): its children stop too rather
        # than hold the ports, and the stack starts again in the same home.
        children = _pids(home)
        supervisor = json.loads((home / "state.json").read_text())["supervisor"]
        os.kill(supervisor, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(p["pid"]) for p in children):
            time.sleep(0.5)
        assert not [p["pid"] for p in children if _alive(p["pid"])], "orphans outlived it"

    with running_stack(home) as third:
        wait_served(third.settings.serve_url, "keep", 1)
        # `cauce up` names every process it started, as many as it says are up.
        names = sorted(p["name"] for p in third.cli_json("status")["processes"])
        listed = sorted(
            line.split()[0] for line in third.started.splitlines() if " up (pid " in line
        )
        assert listed == names, third.started
        assert f"stack is up: {len(names)} processes" in third.started


def _pids(home: Path) -> list[dict]:
    return [{"pid": int(p.read_text())} for p in (home / "pids").glob("*.pid")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


assert CAUCE


def _found_from_another_directory(stack: Stack, elsewhere: Path) -> None:
    """From another CAUCE_HOME on the same ports, `status` and `up` name the running stack's home;
    `up --workers` on the running stack says it runs and how to change its workers."""
    env = {**stack.env, "CAUCE_HOME": str(elsewhere)}
    status = subprocess.run([CAUCE, "status"], env=env, capture_output=True, text=True, timeout=60)
    hint = f"a stack is running with CAUCE_HOME={stack.home.resolve()}"
    assert status.returncode == 1 and hint in status.stdout, status.stdout
    up = subprocess.run([CAUCE, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert up.returncode != 0 and hint in up.stderr and "Traceback" not in up.stderr, up.stderr
    scale = stack.cli("up", "-w", "train=2", check=False)
    assert scale.returncode == 1 and "already running" in scale.stdout
    assert "cauce down, then cauce up -w train=2" in scale.stdout


def test_a_drop_starts_its_run_through_an_event_and_a_duplicate_event_starts_nothing(
    tmp_path: Path,
) -> None:
    # The watcher's poll a minute away: only SeaweedFS's webhook, which `cauce up` configures,
    # can start the run at once. (An alias move reaching the prediction service through the
    # broker: tests/integration/test_serve_server.py.)
    with running_stack(tmp_path / "home", CAUCE_WATCH_POLL_SECONDS="60") as stack:
        log = stack.home / "logs" / "watcher.log"
        wait_for(lambda: "accepting object-store events" in log.read_text(), "events", 30)
        time.sleep(1)  # past the watcher's first scan: it now waits a minute for a wake
        key = "incoming/evented/data.csv"
        dropped = time.monotonic()
        stack.store.put_bytes(key, b"not a table")  # its run fails at ingest: no need to wait
        run_id = run_for(stack.store, key, timeout=10)
        picked = time.monotonic() - dropped
        assert picked < 5, f"the run started {picked:.1f}s after the drop"

        # The same notification again (a webhook retry, a replay): the ledger starts nothing.
        url = f"http://127.0.0.1:{stack.settings.events_port}/events"
        token = stack.settings.events_token.get_secret_value()  # type: ignore[union-attr]
        event = {"event_type": "create", "key": f"/buckets/{stack.settings.bucket}/{key}"}
        answer = requests.post(url, json=event, headers={"Authorization": f"Bearer {token}"})
        assert (answer.status_code, answer.json()) == (202, {"accepted": 1, "ignored": 0})
        refused = requests.post(url, json=event, headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401

        time.sleep(1)  # what a second run would take to show
        runs = [r for r in stack.cli_json("runs") if r["pipeline"] == "evented"]
        assert [r["run_id"] for r in runs] == [run_id]


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.2)
