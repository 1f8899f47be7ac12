"""The prediction service as `cauce up` starts it (granian's master and its workers), against
SeaweedFS and a real fitted model, over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import requests

from services.console.actions import roll_back
from shared.config import Settings
from shared.registry import move_alias
from shared.stack.local import child_env, serve_argv
from shared.stack.servers import free_port
from shared.storage import Store
from shared.wake import announce_alias
from tests.conftest import wait_until
from tests.integration.serve_support import deploy, fit_iris, iris_frame

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
REQUESTS_TOTAL = 'cauce_serve_requests_total{pipeline="iris",status="200",version="1"}'


@contextmanager
def launched(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`serve_argv()` in the background, killed with its workers if the test did not stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            serve_argv(), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def workers(pid: int) -> set[int]:
    """The pids of a process's children: granian's workers."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def environment(pid: int) -> dict[str, str]:
    """The environment a process was started with."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def answering(pids: set[int], metrics_dir: Path) -> set[int]:
    """The workers that have counted a request (prometheus_client writes one file per pid)."""
    return {pid for pid in pids if (metrics_dir / f"counter_{pid}.db").exists()}


def refused(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port is refused."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def models_loaded(log: Path) -> int:
    """How many times a worker loaded the model (each logs it once)."""
    return log.read_text().count("serving model iris v1")


def predict(url: str) -> requests.Response:
    """One prediction on a connection of its own, so that any worker may take it."""
    return requests.post(
        url + "/invocations/iris",
        json={"instances": ROWS},
        headers={"Connection": "close"},
        timeout=10,
    )


def send_until_answered(url: str, pids: set[int], metrics_dir: Path, log: Path) -> int:
    """Predictions, eight at a time, until every worker in `pids` has answered one; how many."""
    sent = 0
    with ThreadPoolExecutor(4) as pool:
        for _ in range(100):
            if answering(pids, metrics_dir) == pids:
                return sent
            statuses = [r.status_code for r in pool.map(lambda _: predict(url), range(8))]
            assert statuses == [200] * 8
            sent += 8
    raise AssertionError(f"not every worker answered; the service's log:\n{log.read_text()}")


def infer(url: str, path: str) -> tuple[int, str, str]:
    """One OIP v2 inference of ROWS on a connection of its own: its status, the version its
    X-Model-Version header names, and the model_version of its body."""
    inputs = [{"name": "rows", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]
    answer = requests.post(
        url + path, json={"inputs": inputs}, headers={"Connection": "close"}, timeout=10
    )
    body = answer.json()
    return (
        answer.status_code,
        answer.headers.get("X-Model-Version", ""),
        str(body.get("model_version", body.get("error"))),
    )


def infer_many(url: str, path: str, count: int) -> Counter[tuple[int, str, str]]:
    """`count` inferences, four at a time over fresh connections, tallied by what they answered."""
    with ThreadPoolExecutor(4) as pool:
        return Counter(pool.map(lambda _: infer(url, path), range(count)))


def reports(url: str, path: str) -> bool:
    """Whether the worker that takes this GET answers 200 for a model."""
    return requests.get(url + path, headers={"Connection": "close"}, timeout=10).ok


def listing(url: str) -> list[str]:
    """The pipelines /v2/models names, asked over a fresh connection."""
    answer = requests.get(url + "/v2/models", headers={"Connection": "close"}, timeout=10)
    return [model["name"] for model in answer.json()["models"]]


def total_requests(url: str) -> float:
    """The prediction requests /metrics counts, summed over workers."""
    lines = requests.get(url + "/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(REQUESTS_TOTAL))


def check_http_manners(url: str) -> None:
    """What granian hands the prediction route: chunked bodies, the size limit on a kept-alive
    connection, another method than POST."""
    body = json.dumps({"instances": ROWS}).encode()
    with requests.Session() as session:  # one keep-alive connection throughout
        chunked = session.post(
            url + "/invocations/iris",
            data=iter([body[:7], body[7:]]),  # a generator: sent chunked, with no length
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert chunked.status_code == 200, chunked.text
        assert chunked.headers["X-Model-Version"] == "1"
        # Many times over: the server answers before the client has sent the whole body, and
        # what is left of it must not reach the next request (or close the connection under it).
        for _ in range(50):
            for data in (json.dumps({"instances": ROWS * 200}).encode(), iter([body] * 100)):
                big = session.post(url + "/invocations/iris", data=data, timeout=10)
                assert big.status_code == 413, big.text
                assert big.json() == {
                    "error": "the request body is larger than 4096 bytes",
                    "field": "body",
                }
                after = session.post(url + "/invocations/iris", json={"instances": ROWS})
                assert after.status_code == 200, after.text
        wrong = session.get(url + "/invocations/iris", timeout=10)
        assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
        assert wrong.json()["field"] == "method"


def test_the_service_cauce_up_starts_answers_on_loopback_from_every_worker_and_stops(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    X, _ = iris_frame()
    model = fit_iris()
    deploy(store, "iris", model, X, task="classification", target="species", run_id="r1")
    port = free_port()
    env = {
        **child_env(settings),
        "CAUCE_SERVE_PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "CAUCE_MAX_REQUEST_BYTES": "4096",
    }
    env.pop("CAUCE_SERVE_HOST", None)  # the default address
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the launcher makes a fresh one
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with launched(env, log) as master:
        wait_until(lambda: models_loaded(log) == 2, "the workers did not load the model", log, 90)
        first = workers(master.pid)
        assert len(first) == 2

        answer = predict(url)
        assert answer.status_code == 200, answer.text
        expected = model.predict(pd.DataFrame(ROWS, columns=X.columns)).tolist()
        assert answer.json()["predictions"] == expected
        assert refused("127.0.0.2", port), "the service listens beyond 127.0.0.1"

        # Counters are summed over the workers, and a worker that dies keeps its counts in the
        # sums while the one that replaces it starts from zero.
        metrics_dir = Path(environment(master.pid)["PROMETHEUS_MULTIPROC_DIR"])
        assert metrics_dir.name.startswith("cauce-metrics-")
        sent = 1 + send_until_answered(url, first, metrics_dir, log)
        assert total_requests(url) == sent
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in workers(master.pid) and len(workers(master.pid)) == 2,
            "the killed worker was not replaced",
            log,
            90,
        )
        wait_until(
            lambda: models_loaded(log) == 3, "the new worker did not load the model", log, 90
        )
        now = workers(master.pid)
        sent += send_until_answered(url, now, metrics_dir, log)
        assert total_requests(url) == sent
        check_http_manners(url)

        started = time.monotonic()
        master.send_signal(signal.SIGTERM)
        code = master.wait(timeout=settings.shutdown_grace_seconds + 10)
        took = time.monotonic() - started
    assert code == 0, log.read_text()
    assert took < settings.shutdown_grace_seconds, f"stopped in {took:.1f}s"
    assert not any(Path(f"/proc/{pid}").exists() for pid in now)


def test_workers_stop_when_their_master_is_killed(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    port = free_port()
    env = {**child_env(settings), "CAUCE_SERVE_PORT": str(port), "WEB_CONCURRENCY": "2"}
    log = tmp_path / "serve.log"
    with launched(env, log) as master:
        wait_until(lambda: models_loaded(log) == 2, "the workers did not load the model", log, 90)
        orphans = workers(master.pid)
        os.kill(master.pid, signal.SIGKILL)  # the master only: its workers are left behind
        master.wait()
        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans),
            "the workers outlived their master",
            log,
            timeout=20,
        )
        assert refused("127.0.0.1", port), "an orphaned worker still holds the port"


def iris_on_two_workers_polling_hourly(
    settings: Settings, store: Store, tmp_path: Path
) -> tuple[pd.DataFrame, dict[str, str], str, Path]:
    """Iris v1 in production, and a service to launch: two workers polling once an hour; the
    rows, its environment, its URL and its log."""
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    port = free_port()
    env = {
        **child_env(settings),
        "CAUCE_SERVE_PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "CAUCE_SERVE_POLL_SECONDS": "3600",
    }
    return X, env, f"http://127.0.0.1:{port}", tmp_path / "serve.log"


def test_a_model_one_worker_reports_served_answers_on_every_worker(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    X, env, url, log = iris_on_two_workers_polling_hourly(settings, store, tmp_path)
    # The next poll is an hour away: what a worker serves after its first look at the registry,
    # it must find when asked.
    with launched(env, log) as master:
        wait_until(lambda: models_loaded(log) == 2, "the workers did not load the model", log, 180)
        pids = workers(master.pid)
        metrics_dir = Path(environment(master.pid)["PROMETHEUS_MULTIPROC_DIR"])

        # A first deploy: once one worker says the model is there, every request finds it.
        deploy(
            store,
            "roses",
            fit_iris("tree"),
            X,
            task="classification",
            target="species",
            run_id="r2",
        )
        wait_until(lambda: reports(url, "/v2/models/roses"), "roses was never served", log, 30)
        with ThreadPoolExecutor(4) as pool:  # a listing names it, whichever worker answers
            listed = list(pool.map(lambda _: listing(url), range(40)))
        assert all("roses" in names for names in listed), listed
        answers = infer_many(url, "/v2/models/roses/infer", 100)
        assert answers == Counter({(200, "1", "1"): 100}), log.read_text()[-3000:]
        assert answering(pids, metrics_dir) == pids, "the requests did not reach both workers"

        # A new version: asked for by number, it answers on every worker once one reports it;
        # unnamed, each answer says which version gave it while the workers catch up.
        deploy(
            store, "iris", fit_iris("tree"), X, task="classification", target="species", run_id="r3"
        )
        wait_until(
            lambda: reports(url, "/v2/models/iris/versions/2"), "iris v2 was never served", log, 30
        )
        answers = infer_many(url, "/v2/models/iris/versions/2/infer", 100)
        assert answers == Counter({(200, "2", "2"): 100}), log.read_text()[-3000:]
        answers = infer_many(url, "/v2/models/iris/infer", 50)
        assert set(answers) <= {(200, "1", "1"), (200, "2", "2")}, answers


def stalled_posts(url: str, count: int) -> list[socket.socket]:
    """`count` connections that each POST a body 100 bytes shorter than they declare, then wait."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"instances": ROWS}).encode()
    head = (
        f"POST /invocations/iris HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + 100}\r\n\r\n"
    ).encode()
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(head + body)
        socks.append(sock)
    return socks


def test_a_body_that_never_arrives_costs_only_its_own_connection(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    port = free_port()
    env = {
        **child_env(settings),
        "CAUCE_SERVE_PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "CAUCE_BODY_TIMEOUT_SECONDS": "4",
    }
    url, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with launched(env, log):
        wait_until(lambda: models_loaded(log) == 2, "the workers did not load the model", log, 180)
        socks = stalled_posts(url, 20)  # more than the workers have threads, ten times over
        try:
            started = time.monotonic()
            answers = [predict(url) for _ in range(40)]
            took = time.monotonic() - started
            assert [a.status_code for a in answers] == [200] * 40, log.read_text()[-3000:]
            assert took < 4, f"40 predictions took {took:.1f} s beside 20 stalled bodies"
            # Each stalled request is answered 408 once its body stops arriving, and closed.
            first = socks[0].recv(65536)
            assert first.startswith(b"HTTP/1.1 408"), first
            assert b"stopped arriving for 4 s" in first
            for sock in socks:
                while sock.recv(65536):
                    pass  # the server closes each connection after its 408
        finally:
            for sock in socks:
                sock.close()


def test_an_announced_alias_move_reaches_every_worker_without_a_poll(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    # No poll during the test: only the publish can tell the workers.
    X, env, url, log = iris_on_two_workers_polling_hourly(settings, store, tmp_path)
    with launched(env, log) as master:
        wait_until(lambda: models_loaded(log) == 2, "the workers did not load the model", log, 180)
        assert len(workers(master.pid)) == 2

        # Deploy registers v2 and moves the alias, then announces it, as services/deploy does.
        record = deploy(
            store,
            "iris",
            fit_iris("tree"),
            X,
            task="classification",
            target="species",
            run_id="r2",
            promote=False,
        )
        pointer = move_alias(store, "iris", record["version"], reason="test")
        moved = time.monotonic()
        assert announce_alias(settings.broker_url, pointer) == 2  # one subscriber per worker
        wait_until(
            lambda: log.read_text().count("serving model iris v2") == 2,
            "not every worker loaded v2 after the announcement",
            log,
            10,
        )
        reached = time.monotonic() - moved
        answers = infer_many(url, "/v2/models/iris/infer", 40)  # no version named
        assert answers == Counter({(200, "2", "2"): 40}), log.read_text()[-3000:]

        # A rollback in the console announces too: back to v1 on every worker.
        roll_back(store, "iris", version=1, expected=2, broker_url=settings.broker_url)
        wait_until(
            lambda: infer_many(url, "/v2/models/iris/infer", 20) == Counter({(200, "1", "1"): 20}),
            "the rollback did not reach every worker",
            log,
            10,
        )
    assert reached < 5, f"v2 served {reached:.2f}s after the announcement"
