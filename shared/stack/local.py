"""The local stack: every cauce process as a supervised background process under `$CAUCE_HOME`."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from shared.config import Settings
from shared.errors import CauceError
from shared.layout import BATCH, INCOMING
from shared.pipeline import STAGES
from shared.stack.servers import broker_argv, http_answers, port_is_free, tcp_answers, weed_argv

STOP_GRACE_SECONDS = 30.0


@dataclass
class Proc:
    """One supervised process: what to run and how to tell it is healthy."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    probe: tuple[str, Any] | None = None  # ("tcp", port) or ("http", url)
    cwd: Path | None = None  # where it runs (default: the supervisor's own directory)
    # Run `argv` (`python -m MODULE ...`) in a fork of the supervisor, which imported the stage
    # modules once, instead of in a new interpreter: the workers share those pages.
    forked: bool = False


# The watcher's poll when events tell it of drops: a drop whose event was lost waits this long.
EVENTS_POLL_SECONDS = 10.0


def write_stack_env(settings: Settings) -> None:
    """Record where the stack listens, a random S3 key pair made on first start and the API token
    once one was set, in `$CAUCE_HOME/stack.env`, so later commands with the same CAUCE_HOME
    find them."""
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "stack.env"
    lines = {}
    if path.exists():
        lines = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    lines.setdefault(
        "CAUCE_S3_ACCESS_KEY", settings.s3_access_key or f"cauce-{secrets.token_hex(4)}"
    )
    lines.setdefault("CAUCE_S3_SECRET_KEY", settings.s3_secret_key or secrets.token_urlsafe(24))
    key = settings.signing_key.get_secret_value() if settings.signing_key else None
    lines.setdefault("CAUCE_SIGNING_KEY", key or secrets.token_urlsafe(32))
    # Object-store events (POST /events on the watcher), which SeaweedFS's filer webhook sends:
    # a drop starts its run at once, and the watcher's poll is only the reconciliation path.
    # CAUCE_EVENTS_TOKEN set but empty turns them off (polling only).
    if settings.events_token is None:
        lines.setdefault("CAUCE_EVENTS_TOKEN", secrets.token_urlsafe(24))
    else:
        lines["CAUCE_EVENTS_TOKEN"] = settings.events_token.get_secret_value()
    evented = bool(lines["CAUCE_EVENTS_TOKEN"])
    if evented and "CAUCE_WATCH_POLL_SECONDS" not in os.environ:
        lines.setdefault("CAUCE_WATCH_POLL_SECONDS", str(EVENTS_POLL_SECONDS))
    if settings.api_token is not None and settings.api_token.get_secret_value():
        # Kept with the stack: `cauce down; cauce up` without CAUCE_API_TOKEN keeps auth on.
        lines["CAUCE_API_TOKEN"] = settings.api_token.get_secret_value()
    lines.update(
        CAUCE_BROKER_URL=settings.broker_url,
        CAUCE_BUCKET=settings.bucket,
        CAUCE_S3_ENDPOINT_URL=settings.s3_endpoint_url or "",
        CAUCE_SERVE_PORT=str(settings.serve_port),
        CAUCE_CONSOLE_PORT=str(settings.console_port),
        CAUCE_EVENTS_PORT=str(settings.events_port),
    )
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    path.chmod(0o600)


# Go's soft heap limit for SeaweedFS: without it weed kept the buffers of its largest transfer
# (about 450 MiB after three 130 MiB objects, 790 MiB after a 1M-row run) for as long as it idled;
# with it, 190 MiB, and a 130 MiB put takes as long (docs/benchmarks.md). A lower limit made
# puts slower (256 MiB: about 1.8x).
WEED_MEMORY_LIMIT = "384MiB"


def child_env(settings: Settings) -> dict[str, str]:
    """The environment every child gets: the settings, exported as CAUCE_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUCE_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            env[f"CAUCE_{name.upper()}"] = str(value)
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    return env


def plan(settings: Settings, workers: dict[str, int]) -> list[Proc]:
    """The processes of the stack, in start order."""
    home = settings.home.resolve()
    broker_port = urlparse(settings.broker_url).port or 6379
    s3_port = urlparse(settings.s3_endpoint_url or "").port or 8333
    for sub in ("redis", "s3"):
        (home / "data" / sub).mkdir(parents=True, exist_ok=True)
    py = sys.executable
    procs = [
        Proc(
            "broker",
            broker_argv(port=broker_port, data_dir=home / "data" / "redis"),
            probe=("tcp", broker_port),
        ),
        Proc(
            "s3",
            weed_argv(s3_port=s3_port, data_dir=home / "data" / "s3"),
            env={
                "AWS_ACCESS_KEY_ID": settings.s3_access_key or "",
                "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key or "",
                "GOMEMLIMIT": os.environ.get("GOMEMLIMIT", WEED_MEMORY_LIMIT),
            },
            probe=("http", f"http://127.0.0.1:{s3_port}/"),
            cwd=filer_events(settings, home / "data" / "s3-events"),
        ),
        Proc("watcher", [py, "-m", "services.watcher"], forked=True),
    ]
    for stage in STAGES:
        for index in range(1, workers.get(stage, 1) + 1):
            procs.append(
                Proc(
                    f"{stage}-{index}",
                    [
                        py,
                        "-m",
                        "celery",
                        "-A",
                        f"services.{stage}.worker",
                        "worker",
                        "-Q",
                        stage,
                        "-c",
                        "1",
                        "-n",
                        f"{stage}-{index}@%h",
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel",
                        "INFO",
                    ],
                    forked=True,
                )
            )
    # Batch prediction (issue 7): files under batch/<pipeline>/, queued by the watcher.
    batch = ["-Q", "batch", "-c", "1", "-n", "batch-1@%h", "--without-gossip", "--without-mingle"]
    procs.append(
        Proc(
            "batch-1",
            [py, "-m", "celery", "-A", "services.batch.worker", "worker", *batch],
            forked=True,
        )
    )
    procs.append(
        Proc("serve", serve_argv(), probe=("http", f"{settings.serve_url}/v2/health/live"))
    )
    procs.append(
        Proc(
            "console",
            [py, "-m", "services.console"],
            probe=("http", f"{settings.console_url}/api/health"),
        )
    )
    return procs


def filer_events(settings: Settings, folder: Path) -> Path:
    """A folder holding SeaweedFS's `notification.toml` (weed reads it from its working folder):
    a webhook to the watcher's POST /events for writes under `incoming/` and `batch/`; empty
    (no events, polling only) when no CAUCE_EVENTS_TOKEN is set."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "notification.toml"
    config.unlink(missing_ok=True)
    token = settings.events_token.get_secret_value() if settings.events_token else ""
    if token:
        prefixes = [f"/buckets/{settings.bucket}/{top.rstrip('/')}" for top in (INCOMING, BATCH)]
        config.touch(mode=0o600)  # it holds the token
        config.write_text(
            "[notification.webhook]\n"
            "enabled = true\n"
            f'endpoint = "http://127.0.0.1:{settings.events_port}/events"\n'
            f"bearer_token = {json.dumps(token)}\n"
            'event_types = ["create", "update"]\n'
            f"path_prefixes = {json.dumps(prefixes)}\n"
            "timeout_seconds = 2\n"
            "backoff_seconds = 1\n"
        )
    return folder


def serve_argv() -> list[str]:
    """The prediction service as compose runs it: granian with the measured settings."""
    return [sys.executable, "-m", "services.serve"]


def healthy(proc: dict[str, Any]) -> bool:
    """Whether a recorded process is alive and, if it serves a port, answering."""
    if not pid_alive(proc.get("pid")):
        return False
    probe = proc.get("probe")
    if not probe:
        return True
    kind, target = probe
    return tcp_answers(int(target)) if kind == "tcp" else http_answers(str(target))


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def read_state(home: Path) -> dict[str, Any] | None:
    """The running stack's recorded processes, or None when no stack is up."""
    try:
        state = json.loads((home / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if pid_alive(state.get("supervisor")) else None


def status(home: Path) -> list[dict[str, Any]]:
    """Each process of the running stack with its pid and whether it is healthy."""
    state = read_state(home)
    if state is None:
        return []
    return [
        {
            "name": p["name"],
            "pid": p["pid"],
            "healthy": healthy(p),
            "restarts": p.get("restarts", 0),
        }
        for p in state["processes"]
    ]


def up(settings: Settings, workers: dict[str, int]) -> int:
    """Start the supervisor in the background; return its pid (or the running one's)."""
    home = settings.home.resolve()
    state = read_state(home)
    if state is not None:
        return int(state["supervisor"])
    check_ports(settings)
    write_stack_env(settings)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()}
    env["CAUCE_HOME"] = str(home)
    with open(home / "logs" / "supervisor.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.stack.supervisor", json.dumps(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    record_home(settings)
    return proc.pid


def stacks_dir() -> Path:
    """Where running stacks record their homes (per user), so `cauce` finds one from anywhere."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cauce" / "stacks"


def _record(home: Path) -> Path:
    return stacks_dir() / f"{hashlib.sha256(str(home).encode()).hexdigest()[:16]}.json"


def record_home(settings: Settings) -> None:
    """Note that a stack runs in this home on these ports (`down` removes the note)."""
    home = settings.home.resolve()
    try:
        _record(home).parent.mkdir(parents=True, exist_ok=True)
        _record(home).write_text(json.dumps({"home": str(home), "ports": stack_ports(settings)}))
    except OSError:
        pass  # an unwritable cache only costs the hint


def running_elsewhere(settings: Settings) -> Path | None:
    """The home of a running stack, other than this one, listening on this one's ports."""
    home, ports = settings.home.resolve(), set(stack_ports(settings))
    for path in sorted(stacks_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        other = Path(record.get("home", ""))
        if other != home and ports & set(record.get("ports", [])) and read_state(other):
            return other
    return None


def stack_ports(settings: Settings) -> list[int]:
    """The ports a stack with these settings listens on."""
    return [
        urlparse(settings.broker_url).port or 6379,
        urlparse(settings.s3_endpoint_url or "").port or 8333,
        settings.serve_port,
        settings.console_port,
        settings.events_port,
    ]


def check_ports(settings: Settings) -> None:
    """Refuse to start over another server: name the busy port and the setting that moves it."""
    s3_port = urlparse(settings.s3_endpoint_url or "").port or 8333
    wanted = {
        "CAUCE_BROKER_URL": urlparse(settings.broker_url).port or 6379,
        "CAUCE_S3_ENDPOINT_URL": s3_port,
        "CAUCE_S3_ENDPOINT_URL (its gRPC port, +10000)": s3_port + 10000,
        "CAUCE_SERVE_PORT": settings.serve_port,
        "CAUCE_CONSOLE_PORT": settings.console_port,
        "CAUCE_EVENTS_PORT": settings.events_port,
    }
    for setting, port in wanted.items():
        if not port_is_free(port):
            other = running_elsewhere(settings)
            raise CauceError(
                f"a stack is running with CAUCE_HOME={other}: use it with "
                f"`CAUCE_HOME={other} cauce ...`"
                if other
                else f"port {port} is already in use on 127.0.0.1; stop what uses it or "
                f"choose another port with {setting}"
            )


def wait_healthy(home: Path, *, timeout: float, on_progress: Any = None) -> list[dict[str, Any]]:
    """Wait until every process of the stack is healthy; return the last status seen."""
    deadline = time.monotonic() + timeout
    processes: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        processes = status(home)
        if on_progress is not None:
            on_progress(processes)
        if processes and all(p["healthy"] for p in processes):
            return processes
        time.sleep(0.5)
    return processes


def down(home: Path, *, timeout: float = STOP_GRACE_SECONDS * 2 + 10) -> bool:
    """Stop the stack cleanly; False when there was nothing running."""
    state = read_state(home.resolve())
    if state is None:
        return False
    pid = int(state["supervisor"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    _record(home.resolve()).unlink(missing_ok=True)
    return True
