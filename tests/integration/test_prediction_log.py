"""The prediction log: sampled requests reach the bucket as Parquet, and a store that is away
slows no request (records are dropped and counted instead)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
import requests

from services.serve.capture import PredictionLog
from shared.config import Settings
from shared.layout import prediction_log_prefix
from shared.storage import Store
from tests.integration.serve_support import deploy, fit_iris, iris_frame, logging_service

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@contextmanager
def serving(settings: Settings, store: Store, sample: float) -> Iterator[tuple[str, PredictionLog]]:
    """iris v1 deployed with `sample` in its spec, served with the log writing every 0.2 s."""
    X, _ = iris_frame()
    deploy(
        store,
        "iris",
        fit_iris(),
        X,
        task="classification",
        target="species",
        run_id="run-1",
        monitoring={"sample": sample},
    )
    with logging_service(settings, store) as served:
        yield served


def logged(store: Store) -> pd.DataFrame:
    """Every row the log wrote for iris."""
    parts = [
        pd.read_parquet(io.BytesIO(store.get_bytes(item.key)))
        for item in store.list_objects(prediction_log_prefix("iris"))
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def post(url: str, request_id: str | None = None) -> requests.Response:
    headers = {"X-Request-Id": request_id} if request_id else {}
    return requests.post(
        f"{url}/invocations/iris", json={"instances": ROWS}, headers=headers, timeout=10
    )


def test_every_request_is_logged_with_its_answer_at_sample_one(
    settings: Settings, store: Store
) -> None:
    with serving(settings, store, sample=1.0) as (url, _log):
        answers = [post(url, f"req-{i}") for i in range(10)]
        v2 = requests.post(
            f"{url}/v2/models/iris/infer",
            json={
                "id": "oip-7",
                "inputs": [
                    {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
                    for c, v in zip(iris_frame()[0].columns, ROWS[0], strict=True)
                ],
            },
            timeout=10,
        )
        wait_rows(store, 31)
    assert all(a.status_code == 200 for a in answers) and v2.status_code == 200
    assert answers[3].headers["X-Request-Id"] == "req-3"
    assert answers[3].json()["request_id"] == "req-3"
    assert v2.json()["id"] == "oip-7" and v2.headers["X-Request-Id"] == "oip-7"
    rows = logged(store).sort_values(["request_id", "row"])
    assert set(rows["request_id"]) == {*(f"req-{i}" for i in range(10)), "oip-7"}
    first = rows[rows["request_id"] == "req-3"]
    assert first["input.sepal_length"].tolist() == [r[0] for r in ROWS]
    assert first["prediction"].tolist() == answers[3].json()["predictions"]
    assert set(rows["version"]) == {1}
    today = prediction_log_prefix("iris", time.strftime("%Y-%m-%d", time.gmtime()))
    keys = [item.key for item in store.list_objects(prediction_log_prefix("iris"))]
    assert keys and all(k.startswith(today) and k.endswith(".parquet") for k in keys), keys


def wait_rows(store: Store, count: int, timeout: float = 20) -> None:
    """Wait until the log holds `count` rows of iris."""
    deadline = time.monotonic() + timeout
    while len(logged(store)) < count:
        assert time.monotonic() < deadline, f"{len(logged(store))} rows logged, not {count}"
        time.sleep(0.1)


@pytest.mark.parametrize("sample", [0.25, 0.0])
def test_requests_are_logged_at_the_spec_s_rate(
    settings: Settings, store: Store, sample: float
) -> None:
    with serving(settings, store, sample) as (url, _log):
        for i in range(400):
            assert post(url, f"r{i}").status_code == 200
        time.sleep(0.6)  # two flushes
    requests_logged = logged(store)["request_id"].nunique() if sample else 0
    if sample:
        assert 55 <= requests_logged <= 145, requests_logged  # 100 expected; 5 sd either way
    assert len(logged(store)) == requests_logged * 3


@contextmanager
def blackhole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers: a store that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(100)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_hanging_store_slows_no_request_and_the_dropped_rows_are_counted(
    settings: Settings, store: Store
) -> None:
    X, _ = iris_frame()
    deploy(
        store,
        "iris",
        fit_iris(),
        X,
        task="classification",
        target="species",
        run_id="run-1",
        monitoring={"sample": 1.0},
    )
    with blackhole() as endpoint:
        hanging = Store.from_settings(settings.model_copy(update={"s3_endpoint_url": endpoint}))
        with logging_service(
            settings, store, log_store=hanging, prediction_log_seconds=0.1, prediction_log_queue=5
        ) as (url, _log):
            seconds = []
            for i in range(60):
                started = time.perf_counter()
                assert post(url, f"r{i}").status_code == 200
                seconds.append(time.perf_counter() - started)
            metrics = requests.get(f"{url}/metrics", timeout=10).text
    # The log's writer waits on the store for a minute (boto3's read timeout): had a request
    # waited with it, it would have taken that long.
    assert max(seconds) < 2, max(seconds)
    dropped = [
        line
        for line in metrics.splitlines()
        if line.startswith(
            'cauce_prediction_log_rows_total{outcome="dropped_queue_full",pipeline="iris"}'
        )
    ]
    # The writer took the first batches and hangs on them; five wait in the queue; the rest
    # (most of the 60 requests' 180 rows) were dropped as they came.
    assert dropped and float(dropped[0].split()[-1]) >= 90, dropped
    assert 'outcome="written"' not in metrics
