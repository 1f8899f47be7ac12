"""Posting an alert to the webhook: the body signed with HMAC-SHA256, retried with backoff on
what may pass (no answer, a timeout, a 5xx), never on a 4xx.

The signature (README, "Alerts"): `X-Cauce-Signature: sha256=<hex>`, the HMAC-SHA256 under
CAUCE_ALERT_SECRET of `<X-Cauce-Timestamp>.<body>`, the timestamp being Unix seconds at the try.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from shared.messages import Alert

BACKOFF_SECONDS = 1.0  # before the second try; doubled before each next one (1, 2, 4, 8 s)


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended: the last answer's status (None: none came), the tries, the reason."""

    delivered: bool
    status: int | None
    tries: int
    error: str = ""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Cauce-Signature of `body` sent at `timestamp`."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def headers(
    alert: Alert, body: bytes, secret: bytes, *, timestamp: str | None = None
) -> dict[str, str]:
    """The headers of one try of posting `alert` as `body`."""
    timestamp = timestamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": "cauce-alerts",
        "X-Cauce-Event": alert.event,
        "X-Cauce-Delivery": alert.id,
        "X-Cauce-Timestamp": timestamp,
        "X-Cauce-Signature": signature(secret, timestamp, body),
    }


def post(url: str, alert: Alert, *, secret: bytes, timeout: float) -> requests.Response:
    """One try: POST the signed alert; requests' error when no answer came in `timeout`."""
    body = alert.model_dump_json().encode()
    return requests.post(
        url,
        data=body,
        headers=headers(alert, body, secret),
        timeout=timeout,
        allow_redirects=False,
    )


def deliver(
    url: str,
    alert: Alert,
    *,
    secret: bytes,
    timeout: float,
    tries: int,
    pause: Callable[[float], bool],
) -> Outcome:
    """Post `alert` until a 2xx or a 4xx answers, at most `tries` times; `pause(seconds)` waits
    between tries and returns True to give up (the watcher stopping)."""
    status: int | None = None
    error = ""
    for attempt in range(1, tries + 1):
        try:
            status = post(url, alert, secret=secret, timeout=timeout).status_code
            error = "" if status < 300 else f"the receiver answered {status}"
        except requests.RequestException as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        if status is not None and status < 300:
            return Outcome(True, status, attempt)
        if status is not None and status < 500:  # a 4xx says this alert will never pass
            return Outcome(False, status, attempt, error)
        if attempt < tries and pause(BACKOFF_SECONDS * 2 ** (attempt - 1)):
            return Outcome(False, status, attempt, f"{error}; stopped")
    return Outcome(False, status, tries, error)
