"""Alerts against real servers: a stage's failure and a console rollback arrive at a real HTTP
receiver, signed; a 5xx is retried, a 4xx is not; a dead receiver delays nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from pydantic import SecretStr

from services.console import create_app
from services.watcher.alerting import start_alerts
from shared.alerts import COUNTS, drift_detected, metric_below_threshold
from shared.config import Settings
from shared.context import StageContext
from shared.errors import DataError
from shared.messages import RunStage
from shared.results import Result
from shared.runs import create_run, describe_run
from shared.stack.local import child_env
from shared.stack.servers import free_port
from shared.stage import StageRunner
from shared.storage import Store
from tests.alert_receiver import SECRET, Receiver, receiving
from tests.integration.serve_support import deploy, fit_iris, iris_frame, running
from tests.integration.stage_support import FakeTask

CAUCE = str(Path(sys.executable).parent / "cauce")
RUN = RunStage(run_id="01JALERTRUN000000000000000", pipeline="churn")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running_receiver:
        yield running_receiver


def _alerting(settings: Settings, url: str, **overrides: object) -> Settings:
    """`settings` with alerts posted to `url`."""
    fields = {"alert_url": url, "alert_secret": SecretStr(SECRET), **overrides}
    return settings.model_copy(update=fields)


@pytest.fixture
def delivering(settings: Settings, receiver: Receiver) -> Iterator[Settings]:
    """The watcher's alert delivery running against the receiver; yields its settings."""
    alerting = _alerting(settings, receiver.url, alert_timeout_seconds=1.0, alert_tries=3)
    stop = threading.Event()
    thread = start_alerts(alerting, stop)
    yield alerting
    stop.set()
    thread.join(timeout=10)


def _fail_a_stage(store: Store, settings: Settings) -> None:
    """Run a preprocess stage whose data is bad, as a worker would, against the real bucket."""
    create_run(store, run_id=RUN.run_id, pipeline="churn", source={"key": "x"}, spec_text=None)

    def work(ctx: StageContext) -> Result:
        raise DataError("column 'age' is text; make it numbers", field="age")

    runner = StageRunner(stage="preprocess", store=store, settings=settings, work=work)
    runner(FakeTask(), RUN)


def _counts(settings: Settings) -> dict[bytes, bytes]:
    return redis.Redis.from_url(settings.broker_url).hgetall(COUNTS)


def test_a_failed_run_arrives_signed(
    store: Store, delivering: Settings, receiver: Receiver
) -> None:
    _fail_a_stage(store, delivering)
    (got,) = receiver.wait_for(1)
    assert got.signed
    assert got.headers["X-Cauce-Event"] == "run.failed"
    assert got.headers["X-Cauce-Delivery"] == got.body["id"]
    assert abs(int(got.headers["X-Cauce-Timestamp"]) - time.time()) < 60
    assert (got.body["run_id"], got.body["pipeline"]) == (RUN.run_id, "churn")
    assert got.body["details"]["stage"] == "preprocess"
    assert "column 'age' is text; make it numbers" in got.body["message"]
    assert describe_run(store, RUN.run_id)["state"] == "failed"


def test_a_rollback_in_the_console_arrives(
    settings: Settings, store: Store, delivering: Settings, receiver: Receiver
) -> None:
    X = iris_frame()[0]
    for index, kind in enumerate(("logistic", "tree"), start=1):
        model = fit_iris(kind)
        deploy(store, "iris", model, X, task="classification", target="species", run_id=f"r{index}")
    with running(create_app(delivering, store)) as console:
        moved = requests.post(
            f"{console}/api/models/iris/aliases/production",
            json={"version": 1, "expected": 2, "reason": "v2 misroutes setosa"},
            timeout=30,
        )
    assert moved.status_code == 200
    (got,) = receiver.wait_for(1)
    assert got.signed and got.body["event"] == "model.rolled_back"
    assert (got.body["pipeline"], got.body["version"]) == ("iris", 1)
    assert got.body["details"] == {
        "alias": "production",
        "previous": 2,
        "reason": "v2 misroutes setosa",
    }


def test_drift_and_live_metric_alerts_arrive(delivering: Settings, receiver: Receiver) -> None:
    broker = delivering.broker_url
    drift_detected(broker, pipeline="churn", version=3, feature="age", value=0.4, threshold=0.2)
    metric_below_threshold(
        broker, pipeline="churn", version=3, metric="f1_macro", value=0.61, threshold=0.7
    )
    drift, metric = receiver.wait_for(2)
    assert drift.signed and metric.signed
    assert (
        drift.body["event"] == "drift.detected" and "drift of age is 0.4" in drift.body["message"]
    )
    assert metric.body["event"] == "metric.below_threshold"
    assert metric.body["details"] == {"metric": "f1_macro", "value": 0.61, "threshold": 0.7}


def test_a_5xx_is_retried_until_it_passes(
    store: Store, delivering: Settings, receiver: Receiver
) -> None:
    receiver.script = [500, 503]
    _fail_a_stage(store, delivering)
    tries = receiver.wait_for(3)
    assert [t.body["id"] for t in tries] == [tries[0].body["id"]] * 3  # one alert, three tries
    assert all(t.signed for t in tries)
    time.sleep(0.3)
    assert len(receiver.got) == 3 and _counts(delivering) == {b"delivered": b"1"}


def test_a_4xx_is_not_retried(store: Store, delivering: Settings, receiver: Receiver) -> None:
    receiver.status = 400
    _fail_a_stage(store, delivering)
    receiver.wait_for(1)
    deadline = time.monotonic() + 10
    while _counts(delivering) != {b"dropped": b"1"} and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # longer than the first backoff: a retry would have come by now
    assert len(receiver.got) == 1 and _counts(delivering) == {b"dropped": b"1"}


def test_a_dead_receiver_delays_nothing(settings: Settings, store: Store) -> None:
    with receiving() as hanging:
        hanging.sleep = 5.0  # answers long after the delivery's timeout
        alerting = _alerting(settings, hanging.url, alert_timeout_seconds=2.0, alert_tries=2)
        stop = threading.Event()
        thread = start_alerts(alerting, stop)
        try:
            _fail_a_stage(store, alerting)
            # The stage has ended, its run failed, while its alert's first try still hangs.
            assert describe_run(store, RUN.run_id)["state"] == "failed"
            assert _counts(alerting) == {}
            hanging.wait_for(2)  # timed out, tried again after a second
            deadline = time.monotonic() + 10
            while _counts(alerting) != {b"dropped": b"1"} and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _counts(alerting) == {b"dropped": b"1"}
        finally:
            stop.set()
            thread.join(timeout=10)
    closed = _alerting(settings, f"http://127.0.0.1:{free_port()}/hook")
    unreached = _cauce(closed, "alerts", "test")
    assert unreached.returncode == 1
    assert "did not answer" in unreached.stderr and "Connection" in unreached.stderr


def _cauce(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAUCE, *args], env=child_env(settings), capture_output=True, text=True, timeout=60
    )


def test_cauce_alerts_test_sends_one(settings: Settings, receiver: Receiver) -> None:
    sent = _cauce(_alerting(settings, receiver.url), "alerts", "test", "--json")
    assert sent.returncode == 0, sent.stderr
    assert '"status": 200' in sent.stdout
    (got,) = receiver.got
    assert got.signed and got.headers["X-Cauce-Event"] == "alert.test"
    receiver.status = 401  # a receiver that refuses it: said, exit 1
    refused = _cauce(_alerting(settings, receiver.url), "alerts", "test")
    assert refused.returncode == 1 and "answered 401" in refused.stdout
    off = _cauce(settings, "alerts", "test")
    assert off.returncode == 1 and "set CAUCE_ALERT_URL" in off.stderr


def test_a_url_without_a_secret_is_refused_at_start(settings: Settings, receiver: Receiver) -> None:
    env = {**child_env(settings), "CAUCE_ALERT_URL": receiver.url}
    env.pop("CAUCE_ALERT_SECRET", None)
    result = subprocess.run(
        [CAUCE, "alerts", "test"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "CAUCE_ALERT_SECRET" in result.stderr and "CAUCE_ALERT_URL is set" in result.stderr
    assert receiver.got == []
