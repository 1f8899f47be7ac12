"""The local stack's lifecycle: a dead process comes back, and data survives `down` then `up`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

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
