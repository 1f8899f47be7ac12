"""Alert signing and settings: the signature a receiver checks, and a URL needs its secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from pydantic import SecretStr, ValidationError

from shared.alerts import new_alert
from shared.config import Settings
from shared.webhook import headers, signature
from tests.alert_receiver import verify


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"run.failed"}'
    expected = hmac.new(b"s3cret", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert signature(b"s3cret", "1767225600", body) == f"sha256={expected}"


def test_the_headers_carry_event_delivery_timestamp_and_a_signature_that_verifies() -> None:
    alert = new_alert("model.promoted", "churn v3 is now production", pipeline="churn", version=3)
    body = alert.model_dump_json().encode()
    sent = headers(alert, body, b"s3cret")
    assert sent["X-Cauce-Event"] == "model.promoted"
    assert sent["X-Cauce-Delivery"] == alert.id == json.loads(body)["id"]
    assert abs(int(sent["X-Cauce-Timestamp"]) - time.time()) < 5
    assert verify("s3cret", sent, body)  # the README's receiver snippet
    assert not verify("another", sent, body)
    assert not verify("s3cret", sent, body.replace(b"v3", b"v4"))
    later = str(int(sent["X-Cauce-Timestamp"]) + 1)
    assert not verify("s3cret", {**sent, "X-Cauce-Timestamp": later}, body)
    stale = headers(alert, body, b"s3cret", timestamp="1767225600")  # long ago: a replay
    assert not verify("s3cret", stale, body)


def test_the_body_names_what_happened() -> None:
    alert = new_alert("run.failed", "x" * 5000, pipeline="", run_id="01JRUN", details={"a": 1})
    body = json.loads(alert.model_dump_json())
    assert set(body) == {
        "id",
        "event",
        "time",
        "pipeline",
        "run_id",
        "version",
        "message",
        "details",
    }
    assert body["pipeline"] is None and len(body["message"]) == 4000


def test_an_alert_url_needs_a_secret() -> None:
    with pytest.raises(ValidationError, match="required when CAUCE_ALERT_URL is set"):
        Settings(alert_url="https://hooks.example.org/cauce")
    with pytest.raises(ValidationError, match="http:// or https://"):
        Settings(alert_url="hooks.example.org", alert_secret=SecretStr("s"))
    assert Settings().alert_url == ""  # alerts off: no secret needed
    on = Settings(alert_url="https://hooks.example.org/cauce", alert_secret=SecretStr("s"))
    assert on.alert_tries == 5
