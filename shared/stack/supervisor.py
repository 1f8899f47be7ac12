"""The supervisor behind `cauce up`: starts the stack's processes and restarts any that die."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import boto3

from shared.config import load_settings
from shared.pipeline import STAGES
from shared.stack.local import STOP_GRACE_SECONDS, Proc, child_env, healthy, plan

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> Any:
    """For Popen's preexec_fn: the child gets SIGTERM when the supervisor dies, however it dies
    (SIGKILL, the OOM killer), and stops cleanly instead of holding its port as an orphan that
    the next `cauce up` would trip over. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


PR_SET_NAME = 15  # linux/prctl.h


def _name(name: str) -> None:
    """Name this process in ps and top (`comm`, 15 bytes): the forked workers share the
    supervisor's command line. Linux only; elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


# What the forked processes import once, in the supervisor: each worker's task module and the
# libraries its create_worker() preloads (pandas, scikit-learn, pyarrow, skops, ONNX).
WORKER_MODULES = (
    *(f"services.{stage}.tasks" for stage in (*STAGES, "batch")),
    "services.watcher.watcher",
    "pyarrow.dataset",  # what pyarrow.parquet imports on a first read
    # and what `celery worker` imports as it starts
    "celery.bin.celery",
    "celery.apps.worker",
    "celery.worker.worker",
    "celery.concurrency.prefork",
    "kombu.transport.redis",
)


def preload() -> None:
    """Import what every stage worker needs, so that the workers forked after share its pages."""
    for name in WORKER_MODULES:
        module = importlib.import_module(name)
        for extra in getattr(module, "PRELOAD", ()):
            importlib.import_module(extra)
    boto3.client("s3", region_name="us-east-1")  # botocore's default session loads S3's model
    # Out of the collector's reach: a collection in a worker would otherwise write to every
    # object's header, and so copy the pages it shares with the supervisor.
    gc.collect()
    gc.freeze()


class Forked:
    """A worker run in a fork of the supervisor, watched through the Popen methods it uses."""

    def __init__(self, proc: Proc, env: dict[str, str], out: IO[bytes], parent: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            _run_in_fork(proc, env, out, parent)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)


def _run_in_fork(proc: Proc, env: dict[str, str], out: IO[bytes], parent: int) -> None:
    """The forked child: its own session, log and environment, then its `python -m` module."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        arm = _die_with_parent(parent)
        if arm is not None:
            arm()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        os.environ.clear()
        os.environ.update(env)
        logging.getLogger().handlers.clear()
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        # `python -m MODULE ARGS...`, run as a new interpreter would run it: with its own
        # command line, and the start-up hook it would import (sitecustomize, which tracers and
        # the fault tests use to instrument a process) run again for it.
        sys.orig_argv = list(proc.argv)
        _name(proc.name)
        sys.argv = [proc.argv[2], *proc.argv[3:]]
        if "sitecustomize" in sys.modules:
            importlib.reload(sys.modules["sitecustomize"])
        runpy.run_module(proc.argv[2], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Supervisor:
    """Keeps every process of the stack running, like a container restart policy."""

    def __init__(self, home: Path, procs: list[Proc], env: dict[str, str]) -> None:
        self.home = home
        self.procs = procs
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes] | Forked] = {}
        self.restarts: dict[str, int] = {p.name: 0 for p in procs}
        self.next_start: dict[str, float] = {}
        self.stopping = False
        self.logs: dict[str, IO[bytes]] = {}
        self.arm_child = _die_with_parent(os.getpid())

    def start(self, proc: Proc) -> None:
        """Start one process with its output appended to `logs/<name>.log`."""
        if proc.name not in self.logs:
            self.logs[proc.name] = open(self.home / "logs" / f"{proc.name}.log", "ab")  # noqa: SIM115
        if proc.forked:
            self.children[proc.name] = Forked(
                proc, {**self.env, **proc.env}, self.logs[proc.name], os.getpid()
            )
        else:
            self.children[proc.name] = subprocess.Popen(
                proc.argv,
                env={**self.env, **proc.env},
                stdout=self.logs[proc.name],
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=self.arm_child,  # safe: the supervisor runs no threads
                cwd=proc.cwd,
            )
        (self.home / "pids" / f"{proc.name}.pid").write_text(str(self.children[proc.name].pid))
        self.write_state()

    def write_state(self) -> None:
        """Record every process's pid for `cauce status` and `cauce down`."""
        state = {
            "supervisor": os.getpid(),
            "processes": [
                {
                    "name": p.name,
                    "pid": self.children[p.name].pid if p.name in self.children else None,
                    "probe": p.probe,
                    "restarts": self.restarts[p.name],
                }
                for p in self.procs
            ],
        }
        tmp = self.home / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.home / "state.json")

    def run(self) -> None:
        """Start the servers, wait for them, start the rest, then watch until told to stop."""
        servers = [p for p in self.procs if p.name in ("broker", "s3")]
        for proc in servers:
            self.start(proc)
        if any(p.forked for p in self.procs):
            preload()  # while the servers start
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(self._healthy(p) for p in servers):
            time.sleep(0.2)
        for proc in self.procs:
            if proc.name not in self.children:
                self.start(proc)
        while not self.stopping:
            self.reap()
            time.sleep(0.5)
        self.stop_all()

    def _healthy(self, proc: Proc) -> bool:
        return healthy({"pid": self.children[proc.name].pid, "probe": proc.probe})

    def reap(self) -> None:
        """Restart every process that exited, backing off when one keeps dying."""
        for proc in self.procs:
            child = self.children.get(proc.name)
            if child is None or child.poll() is None:
                continue
            now = time.monotonic()
            if proc.name not in self.next_start:
                delay = min(30.0, 0.5 * 2 ** self.restarts[proc.name])
                log.warning(
                    "%s exited with %s; restarting in %.1fs", proc.name, child.returncode, delay
                )
                self.next_start[proc.name] = now + delay
            elif now >= self.next_start[proc.name]:
                del self.next_start[proc.name]
                self.restarts[proc.name] += 1
                self.start(proc)

    def stop_all(self) -> None:
        """SIGTERM every process, newest first, then SIGKILL what is left after the grace period."""
        for proc in reversed(self.procs):
            child = self.children.get(proc.name)
            if child is not None and child.poll() is None:
                child.terminate()
            if proc.name in ("watcher",):  # the servers go last, after every client has stopped
                self._wait([p for p in self.procs if p.name not in ("broker", "s3")])
        self._wait(self.procs)
        (self.home / "state.json").unlink(missing_ok=True)

    def _wait(self, procs: list[Proc]) -> None:
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs:
            child = self.children.get(proc.name)
            if child is None:
                continue
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %ss; killing it", proc.name, STOP_GRACE_SECONDS)
                child.kill()
                child.wait()


def main(argv: list[str]) -> None:
    """Entry point: `python -m shared.stack.supervisor '{"train": 2}'`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    settings.home = home = settings.home.resolve()
    for sub in ("logs", "pids"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    workers: dict[str, int] = json.loads(argv[0]) if argv else {}
    env = child_env(settings)
    # The libraries the forked workers share read their settings (OMP_NUM_THREADS) on import.
    os.environ.update(env)
    supervisor = Supervisor(home, plan(settings, workers), env)

    def stop(*_: Any) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
