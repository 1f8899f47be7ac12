"""Ground truth and live metrics: labels posted to the prediction service (and a CSV dropped in
the bucket) are joined with the prediction log, scored per version beside the test metrics,
shown on /metrics, and a live metric below its threshold raises metric.below_threshold."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd
import pytest
import redis
import requests
from sklearn.metrics import accuracy_score, f1_score

from services.watcher.live import check_live_metrics
from services.watcher.monitor import start_monitoring
from shared.alerts import ALERTS
from shared.config import Settings
from shared.layout import LATEST, feedback_prefix, live_key, prediction_log_prefix
from shared.storage import Store
from tests.integration.serve_support import deploy, fit_iris, iris_frame, logging_service

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
CLASSES = ["setosa", "versicolor", "virginica"]
MONITORING = {"sample": 1.0, "window_hours": 1, "live_threshold": 0.9}


def deploy_iris(store: Store, kind: str, run_id: str) -> None:
    """An iris classifier as a new production version, every request logged, a live threshold
    of 0.9 on f1_macro."""
    X = iris_frame()[0]
    deploy(
        store,
        "iris",
        fit_iris(kind),
        X,
        task="classification",
        target="species",
        run_id=run_id,
        monitoring=MONITORING,
    )


@contextmanager
def serving(settings: Settings, store: Store) -> Iterator[str]:
    """iris v1 deployed and served with its log on."""
    deploy_iris(store, "logistic", "run-1")
    with logging_service(settings, store) as (url, _log):
        yield url


def predict(url: str, request_id: str) -> list[str]:
    answer = requests.post(
        f"{url}/invocations/iris",
        json={"instances": ROWS},
        headers={"X-Request-Id": request_id},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["predictions"])


def wait_logged(store: Store, rows: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        logged = sum(
            len(pd.read_parquet(io.BytesIO(store.get_bytes(o.key))))
            for o in store.list_objects(prediction_log_prefix("iris"))
        )
        if logged >= rows:
            return
        assert time.monotonic() < deadline, f"{logged} rows logged, not {rows}"
        time.sleep(0.1)


def wrong(label: str) -> str:
    return CLASSES[(CLASSES.index(label) + 1) % 3]


def expected(labels: list[str], predictions: list[str]) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(labels, predictions),
        "f1_macro": f1_score(labels, predictions, labels=CLASSES, average="macro", zero_division=0),
    }


def test_feedback_becomes_a_live_metric_per_version(settings: Settings, store: Store) -> None:
    with serving(settings, store) as url:
        v1 = {f"a{i}": predict(url, f"a{i}") for i in range(10)}
    deploy_iris(store, "tree", "run-2")
    with logging_service(settings, store) as (url, _log):
        v2 = {f"b{i}": predict(url, f"b{i}") for i in range(10)}
        wait_logged(store, 60)
        # v1: one row of four requests is wrong (rows named one by one, or all rows at once)
        truth1 = {
            rid: [wrong(p) if i < 4 and r == 1 else p for r, p in enumerate(predicted)]
            for i, (rid, predicted) in enumerate(v1.items())
        }
        items = [
            {"request_id": rid, "row": r, "label": label}
            for rid, labels in list(truth1.items())[:5]
            for r, label in enumerate(labels)
        ] + [{"request_id": rid, "labels": labels} for rid, labels in list(truth1.items())[5:]]
        posted = requests.post(
            f"{url}/v2/models/iris/feedback", json={"feedback": items}, timeout=10
        )
        # v2: right on every row, labelled by a CSV file dropped in the bucket
        csv = "request_id,row,label\n" + "".join(
            f"{rid},{r},{p}\n" for rid, predicted in v2.items() for r, p in enumerate(predicted)
        )
        store.put_bytes(f"{feedback_prefix('iris')}labels.csv", csv.encode())
        flagged: list[tuple] = []
        written = check_live_metrics(
            store, now=datetime.now(UTC), flagged=lambda *a: flagged.append(a)
        )
        scraped = requests.get(f"{url}/metrics", timeout=10).text
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"pipeline": "iris", "rows": 30, "requests": 10}
    assert written == 1
    report = store.get_json(live_key("iris", LATEST))
    assert report["feedback_rows"] == 60 and report["matched_rows"] == 60
    one, two = report["versions"]["1"], report["versions"]["2"]
    labels1 = [label for labels in truth1.values() for label in labels]
    want1 = expected(labels1, [p for predicted in v1.values() for p in predicted])
    assert one["rows"] == 30 and one["metric"] == "f1_macro"
    assert one["live"]["accuracy"] == pytest.approx(want1["accuracy"]) == pytest.approx(26 / 30)
    assert one["live"]["f1_macro"] == pytest.approx(want1["f1_macro"])
    assert one["live"]["roc_auc"] is None and "roc_auc" in one["unavailable"]
    assert one["test"]["accuracy"] == 0.95  # the test split's, beside the live one
    assert one["below"] is True and two["below"] is False
    assert two["rows"] == 30 and two["live"]["accuracy"] == 1.0
    assert flagged == [
        ("iris", 1, "f1_macro", one["live"]["f1_macro"], 0.9, {"rows": 30, "test": None})
    ]
    gauge = 'cauce_live_metric{metric="accuracy",pipeline="iris",version="1"}'
    (line,) = [m for m in scraped.splitlines() if m.startswith(gauge)]
    assert float(line.split()[-1]) == pytest.approx(26 / 30)
    assert 'cauce_live_labelled_rows{pipeline="iris",version="2"} 30.0' in scraped
    # feedback is not a prediction: v2 answered ten requests, and the post is not among them
    assert 'cauce_serve_requests_total{pipeline="iris",status="200",version="2"} 10.0' in scraped


def test_a_live_metric_below_its_threshold_raises_an_alert(
    settings: Settings, store: Store
) -> None:
    with serving(settings, store) as url:
        answers = {f"r{i}": predict(url, f"r{i}") for i in range(8)}
        wait_logged(store, 24)
        items = [
            {"request_id": rid, "labels": [wrong(p) for p in ps]} for rid, ps in answers.items()
        ]
        posted = requests.post(
            f"{url}/v2/models/iris/feedback", json={"feedback": items}, timeout=10
        )
    assert posted.status_code == 200, posted.text
    stop = threading.Event()
    thread = start_monitoring(
        settings.model_copy(update={"monitor_seconds": 0.2}), stop, active=lambda: True
    )
    broker = redis.Redis.from_url(settings.broker_url)
    try:
        deadline = time.monotonic() + 20
        while not broker.llen(ALERTS):
            assert time.monotonic() < deadline, "no alert was raised"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=10)
    alert = json.loads(broker.lindex(ALERTS, 0) or b"{}")
    assert alert["event"] == "metric.below_threshold"
    assert (alert["pipeline"], alert["version"]) == ("iris", 1)
    assert alert["details"]["metric"] == "f1_macro" and alert["details"]["value"] == 0.0
    assert alert["details"]["threshold"] == 0.9 and alert["details"]["rows"] == 24
    assert "live f1_macro is 0, below 0.9" in alert["message"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, "body"),
        ({"labels": []}, 400, "feedback"),
        ({"feedback": []}, 400, "feedback"),
        (
            {"feedback": [{"request_id": "a0", "row": -1, "label": "setosa"}]},
            400,
            "feedback[0].row",
        ),
        ({"feedback": [{"request_id": "a0"}]}, 400, "feedback[0].label"),
        ({"feedback": [{"request_id": 7, "label": "setosa"}]}, 400, "feedback[0].request_id"),
        (
            {
                "feedback": [
                    {"request_id": "a", "label": "x"},
                    {"request_id": "b", "labels": [None]},
                ]
            },
            400,
            "feedback[1].labels[0]",
        ),
        ({"feedback": [{"request_id": "a", "lable": "x"}]}, 400, "feedback[0].lable"),
    ],
)
def test_a_bad_feedback_body_gets_a_4xx_naming_the_field(
    settings: Settings, store: Store, body: object, status: int, field: str
) -> None:
    with serving(settings, store) as url:
        sent = {"data": body} if isinstance(body, bytes) else {"json": body}
        answer = requests.post(f"{url}/v2/models/iris/feedback", timeout=10, **sent)
        unknown = requests.post(f"{url}/v2/models/nope/feedback", json={"feedback": []}, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field, answer.json()
    assert answer.json()["error"]
    assert unknown.status_code == 404 and unknown.json()["field"] == "pipeline"
    assert list(store.list_objects(feedback_prefix("iris"))) == []
