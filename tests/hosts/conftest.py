"""A cauce deployment over four hosts, each a network namespace of this machine (network.py):

    store  the Redis-protocol broker and SeaweedFS
    w1     ingest, preprocess and train workers
    w2     train, evaluate and deploy workers
    front  the watcher and the prediction service

Every process is told only where the broker and the store are, the S3 keys, the signing key and
ordinary settings, as a process on another machine would be. One network and one deployment serve
the whole module; each test uses a pipeline of its own. Building namespaces needs root.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from subprocess import Popen, TimeoutExpired

import pytest
import redis

from shared.config import Settings
from shared.errors import CauceError
from shared.runs import describe_run, list_run_ids, read_run
from shared.stack.servers import broker_argv, http_answers, weed_argv
from shared.storage import Store
from tests.conftest import ACCESS_KEY, SECRET_KEY, SIGNING_KEY, stop, wait_until
from tests.hosts.network import Network

REPO = Path(__file__).resolve().parents[2]
BROKER_PORT, S3_PORT, SERVE_PORT = 6379, 8333, 8080
STALE_SECONDS = "4"
LIBFAKETIME = "/usr/lib/*/faketime/libfaketime.so.1"  # Debian's faketime, whatever the CPU
WORKERS = {"w1": ("ingest", "preprocess", "train"), "w2": ("train", "evaluate", "deploy")}


@dataclass
class Deployment:
    """The hosts, their processes and a client of the store on the network."""

    network: Network
    root: Path
    env: dict[str, str]
    store: Store
    procs: dict[str, list[Popen[bytes]]] = field(default_factory=dict)

    def start(self, host: str, name: str, argv: Sequence[str], **extra: str) -> Popen[bytes]:
        """Start `argv` on `host` with the deployment's environment (and `extra`)."""
        env = {**self.env, "CAUCE_HOME": str(self.root / host), **extra}
        proc = self.network.start(host, argv, env=env, log=self.log(name), cwd=REPO)
        self.procs.setdefault(host, []).append(proc)
        return proc

    def log(self, name: str) -> Path:
        """A process's log file."""
        return self.root / "logs" / f"{name}.log"

    def start_workers(self, host: str, **extra: str) -> None:
        """Start the host's stage workers, one Celery worker per stage, and wait until each
        is ready."""
        for stage in WORKERS[host]:
            name = f"{stage}-{host}"
            self.log(name).unlink(missing_ok=True)
            self.start(host, name, worker_argv(stage, name), **extra)
        for stage in WORKERS[host]:
            log = self.log(f"{stage}-{host}")
            wait_until(partial(_says_ready, log), f"{stage} on {host} not ready", log)

    def stop_host(self, host: str) -> None:
        """Stop every process started on the host (SIGTERM, then SIGKILL)."""
        for proc in self.procs.pop(host, []):
            stop(proc)

    def stop_all(self) -> None:
        """Stop every process of every host at once: SIGTERM to all, then SIGKILL to what is
        left after 20 s."""
        procs = [proc for host in list(self.procs) for proc in self.procs.pop(host)]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutExpired:
                proc.kill()
                proc.wait()

    def drop(self, pipeline: str, name: str, data: bytes, *, spec: str | None = None) -> str:
        """Upload a file to `incoming/<pipeline>/` with boto3 (and its spec first); return its
        key."""
        if spec is not None:
            self.store.client.put_object(
                Bucket=self.store.bucket, Key=f"pipelines/{pipeline}.yaml", Body=spec.encode()
            )
        key = f"incoming/{pipeline}/{name}"
        self.store.client.put_object(Bucket=self.store.bucket, Key=key, Body=data)
        return key

    def run_of(self, key: str, *, timeout: float = 30) -> str:
        """The id of the run the watcher started for the drop at `key`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run_id in reversed(list_run_ids(self.store)):
                if read_run(self.store, run_id)["source"]["key"] == key:
                    return run_id
            time.sleep(0.3)
        raise AssertionError(f"no run for {key} within {timeout}s:\n{self.tail('watcher')}")

    def finished(self, run_id: str, *, timeout: float = 150) -> dict:
        """The run's view once it has ended (the store may be away for a while meanwhile)."""
        deadline = time.monotonic() + timeout
        view: dict = {}
        while time.monotonic() < deadline:
            try:
                view = describe_run(self.store, run_id)
            except CauceError:  # the store is unreachable for now
                time.sleep(0.5)
                continue
            if view["state"] in ("succeeded", "failed"):
                return view
            time.sleep(0.3)
        logs = "\n".join(self.tail(p.stem) for p in sorted((self.root / "logs").glob("*.log")))
        raise AssertionError(f"run {run_id} did not end within {timeout}s: {view}\n{logs}")

    def tail(self, name: str, size: int = 2500) -> str:
        """The end of a process's log, titled."""
        path = self.log(name)
        return f"--- {name}\n{path.read_text()[-size:] if path.exists() else ''}"


def _says_ready(log: Path) -> bool:
    return " ready." in log.read_text()


def worker_argv(stage: str, name: str) -> list[str]:
    """A stage worker's command line, as the local stack runs it (shared/stack/local.py)."""
    return [
        *(sys.executable, "-m", "celery", "-A", f"services.{stage}.worker", "worker"),
        *("-Q", stage, "-c", "1", "-n", f"{name}@%h"),
        *("--without-gossip", "--without-mingle", "--loglevel", "INFO"),
    ]


def skewed(offset: str) -> dict[str, str]:
    """The environment that runs a process with its clock `offset` off (libfaketime: `-5m`);
    monotonic clocks stay true, as a real machine's would."""
    found = sorted(Path("/").glob(LIBFAKETIME.lstrip("/")))
    if not found:
        pytest.fail("tests/hosts need Debian's faketime: apt-get install faketime")
    return {"LD_PRELOAD": str(found[0]), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    """The hosts' network, removed after the module (and before it, if a crash left one)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail(
            "tests/hosts build network namespaces: run them as root with iproute2 installed"
        )
    net = Network()
    try:
        net.build()
        yield net
    finally:
        net.clear()


@pytest.fixture(scope="module")
def deployment(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Broker and store on `store`, workers on `w1` and `w2`, watcher and prediction service on
    `front`."""
    root = tmp_path_factory.mktemp("hosts")
    (root / "logs").mkdir()
    store_host = network.address("store")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "CAUCE_BROKER_URL": f"redis://{store_host}:{BROKER_PORT}/0",
        "CAUCE_S3_ENDPOINT_URL": f"http://{store_host}:{S3_PORT}",
        "CAUCE_S3_ACCESS_KEY": ACCESS_KEY,
        "CAUCE_S3_SECRET_KEY": SECRET_KEY,
        "CAUCE_SIGNING_KEY": SIGNING_KEY,
        "CAUCE_STALE_SECONDS": STALE_SECONDS,
        "CAUCE_WATCH_POLL_SECONDS": "0.3",
        "CAUCE_SERVE_POLL_SECONDS": "0.5",
        "CAUCE_ENSEMBLE": "off",
    }
    settings = Settings(
        broker_url=env["CAUCE_BROKER_URL"],
        s3_endpoint_url=env["CAUCE_S3_ENDPOINT_URL"],
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
    )
    running = Deployment(network, root, env, Store.from_settings(settings))
    try:
        _start_servers(running, store_host)
        running.store.ensure_bucket()
        for host in WORKERS:
            running.start_workers(host)
        running.start("front", "watcher", [sys.executable, "-m", "services.watcher"])
        front = network.address("front")
        running.start(
            "front",
            "serve",
            [sys.executable, "-m", "services.serve"],
            CAUCE_SERVE_HOST=front,
            CAUCE_SERVE_PORT=str(SERVE_PORT),
            WEB_CONCURRENCY="1",
        )
        live = f"http://{front}:{SERVE_PORT}/v2/health/live"
        wait_until(
            lambda: http_answers(live), "the prediction service did not start", running.log("serve")
        )
        yield running
    finally:
        running.stop_all()


def _start_servers(running: Deployment, host: str) -> None:
    data = running.root / "store"
    (data / "redis").mkdir(parents=True)
    running.start(
        "store", "broker", broker_argv(port=BROKER_PORT, data_dir=data / "redis", host=host)
    )
    weed = weed_argv(s3_port=S3_PORT, data_dir=data / "s3", host=host)
    keys = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    running.start("store", "s3", weed, **keys)
    client = redis.Redis(host=host, port=BROKER_PORT, socket_timeout=2)

    def pings() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    wait_until(pings, "the broker did not start", running.log("broker"))
    s3 = f"http://{host}:{S3_PORT}/"
    wait_until(lambda: http_answers(s3), "SeaweedFS did not start", running.log("s3"))
