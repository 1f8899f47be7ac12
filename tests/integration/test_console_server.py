"""The console as `cauce up` starts it (granian behind shared/rsgi.py), over real HTTP: a body
that stops arriving, and idle connections, cost only their own connection."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from shared.config import Settings
from shared.stack.local import child_env
from shared.stack.servers import free_port
from tests.conftest import wait_until


def threads(pid: int) -> int:
    """The threads of a process and of its children (granian's master and its worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for each in [pid, *map(int, children)]:
        status = Path(f"/proc/{each}/status").read_text()
        total += int(
            next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1]
        )
    return total


@contextmanager
def running_console(
    settings: Settings, tmp_path: Path, *, body_timeout: int
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`python -m services.console` as `cauce up` starts it, on a free port, answering health;
    its process group killed after."""
    port = free_port()
    env = {
        **child_env(settings),
        "CAUCE_CONSOLE_PORT": str(port),
        "CAUCE_BODY_TIMEOUT_SECONDS": str(body_timeout),
    }
    log = tmp_path / "console.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.console"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        health = f"http://127.0.0.1:{port}/api/health"
        wait_until(lambda: _ok(health), "the console never answered", log, 60)
        yield proc, port
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_stalled_bodies_and_idle_connections_cost_the_console_no_thread(
    settings: Settings, tmp_path: Path
) -> None:
    socks: list[socket.socket] = []
    with running_console(settings, tmp_path, body_timeout=3) as (proc, port):
        try:
            health = f"http://127.0.0.1:{port}/api/health"
            before = threads(proc.pid)
            head = (
                f"POST /api/specs/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{}"
            ).encode()
            for _ in range(20):  # bodies that stop arriving
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.sendall(head)
                socks.append(sock)
            for _ in range(100):  # connections that send nothing at all
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
            time.sleep(1)
            started = time.monotonic()
            statuses = [requests.get(health, timeout=10).status_code for _ in range(20)]
            assert statuses == [200] * 20
            assert time.monotonic() - started < 5
            assert threads(proc.pid) <= before + 10, (before, threads(proc.pid))
            answer = socks[0].recv(65536)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"stopped arriving for 3 s" in answer
        finally:
            for sock in socks:
                sock.close()


def test_a_large_body_may_arrive_slowly_but_not_stop(settings: Settings, tmp_path: Path) -> None:
    """Over 64 KiB (shared/rsgi.py WHOLE_BYTES) a body is read piece by piece: it may take longer
    than the timeout in all as long as no pause is that long; a pause that long gets the 408."""
    size, piece = 200 * 1024, 40 * 1024
    with running_console(settings, tmp_path, body_timeout=2) as (_, port):
        head = (
            f"POST /api/specs/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            slow.sendall(head)
            started = time.monotonic()
            for _ in range(size // piece):  # five pieces, a second apart: 4 s in all, over 2 s
                time.sleep(1)
                slow.sendall(b" " * piece)
            answer = slow.recv(65536)
            assert time.monotonic() - started > 4
            assert answer.startswith(b"HTTP/1.1 4") and not answer.startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stopped:
            stopped.sendall(head + b" " * piece)
            started = time.monotonic()
            answer = stopped.recv(65536)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"stopped arriving for 2 s" in answer
            assert 1.5 < time.monotonic() - started < 10


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False
