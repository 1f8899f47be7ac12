"""The watcher's POST /events over real HTTP: each store's notification shape wakes the watcher
through the real broker; what is not ours, not a write, or not authorised wakes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from services.watcher.events import Events, serve_events
from shared.wake import WAKE, wake_watcher

TOKEN = "events-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
KEY = "incoming/churn/data 2024.csv"


@pytest.fixture
def events(broker_url: str) -> Iterator[str]:
    """POST /events on a free port, waking the watcher through the test's broker database."""
    app = Events(bucket="cauce", token=TOKEN.encode(), wake=lambda: wake_watcher(broker_url))
    server, thread = serve_events(app, host="127.0.0.1", port=0, idle_seconds=2)
    try:
        yield f"http://127.0.0.1:{server.server_port}/events"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def woken(broker_url: str) -> bool:
    """Whether a wake waits for the watcher (taken, so the next check starts afresh)."""
    return redis.Redis.from_url(broker_url).lpop(WAKE) is not None


def s3_event(key: str = "incoming/churn/data+2024.csv", name: str = "ObjectCreated:Put") -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": "cauce"}, "object": {"key": key, "eTag": "abc"}},
            }
        ]
    }


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers=headers or BEARER, timeout=10)


@pytest.mark.parametrize(
    "body",
    [
        s3_event(),
        {"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Message": json.dumps(s3_event())},
        {
            "version": "0",
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": "cauce"}, "object": {"key": KEY, "etag": "abc"}},
        },
        {
            "event_type": "create",
            "key": f"/buckets/cauce/{KEY}",
            "message": {"new_entry": {"name": "data 2024.csv", "attributes": {"file_size": 9}}},
        },
    ],
    ids=["s3", "sns", "eventbridge", "seaweedfs"],
)
def test_each_store_s_notification_of_a_drop_wakes_the_watcher(
    events: str, broker_url: str, body: dict
) -> None:
    answer = post(events, body)
    assert (answer.status_code, answer.json()) == (202, {"accepted": 1, "ignored": 0})
    assert woken(broker_url)


@pytest.mark.parametrize(
    "body",
    [
        s3_event(key="models/churn/aliases/production.json"),  # not a drop
        s3_event(name="ObjectRemoved:Delete"),  # not a write
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "cauce"},
        {
            "event_type": "create",
            "key": "/buckets/cauce/incoming/churn",
            "message": {"new_entry": {"name": "churn", "is_directory": True}},
        },
        {"event_type": "delete", "key": f"/buckets/cauce/{KEY}"},
        {"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}},
        {
            "Type": "SubscriptionConfirmation",
            "TopicArn": "arn:aws:sns:x",
            "SubscribeURL": "https://sns.example/confirm",
        },
    ],
    ids=["other-prefix", "delete", "s3-test", "directory", "weed-delete", "eb-delete", "sns-sub"],
)
def test_what_is_no_drop_is_accepted_and_wakes_nothing(
    events: str, broker_url: str, body: dict
) -> None:
    answer = post(events, body)
    assert answer.status_code == 202 and answer.json()["accepted"] == 0
    assert not woken(broker_url)


def test_another_bucket_s_drop_wakes_nothing(events: str, broker_url: str) -> None:
    body = s3_event()
    body["Records"][0]["s3"]["bucket"]["name"] = "someone-else"
    assert post(events, body).json() == {"accepted": 0, "ignored": 1}
    assert not woken(broker_url)


def test_the_token_is_required_as_bearer_or_basic_auth(events: str, broker_url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic !!"}):
        answer = post(events, s3_event(), headers=headers or {"X-None": "1"})
        assert answer.status_code == 401 and "CAUCE_EVENTS_TOKEN" in answer.json()["error"]
    assert not woken(broker_url)
    basic = base64.b64encode(f"sns:{TOKEN}".encode()).decode()  # https://sns:<token>@host/events
    assert post(events, s3_event(), headers={"Authorization": f"Basic {basic}"}).status_code == 202
    assert woken(broker_url)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({"hello": "world"}, "not an object-store notification"),
        ({"Records": [{"eventName": "ObjectCreated:Put"}]}, "Records[0] needs"),
        ({"Type": "Notification", "Message": "{oops"}, "SNS notification"),
    ],
)
def test_a_malformed_body_is_a_400_that_says_why(
    events: str, broker_url: str, body: Any, reason: str
) -> None:
    answer = post(events, body)
    assert answer.status_code == 400
    assert reason in answer.json()["error"] and answer.json()["field"] == "body"
    assert not woken(broker_url)


def test_only_post_events_and_the_health_probe_answer(events: str) -> None:
    assert requests.get(events, headers=BEARER, timeout=10).status_code == 405
    base = events.removesuffix("/events")
    assert requests.get(f"{base}/health", timeout=10).json() == {"status": "ok"}
    assert requests.post(f"{base}/other", headers=BEARER, timeout=10).status_code == 404
    too_big = b'{"Records": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert post(events, too_big).status_code == 413
