"""`POST /events`: object-store notifications that wake the watcher at once instead of at its poll.

The watcher listens here (CAUCE_EVENTS_HOST:CAUCE_EVENTS_PORT, only when CAUCE_EVENTS_TOKEN is
set) for the notifications a store sends when an object is written:

- the AWS S3 event JSON (`{"Records": [...]}`), as S3 posts it through a Lambda or a relay;
- the same inside an SNS notification (`"Type": "Notification"`, the event in `Message`);
- an EventBridge event (`"source": "aws.s3"`, `"detail-type": "Object Created"`);
- SeaweedFS's filer webhook (`{"event_type": "create", "key": "/buckets/<bucket>/<key>"}`),
  which `cauce up` configures.

A notification that names an object of this bucket under `incoming/` or `batch/` wakes the
watcher (shared/wake.py); the answer is 202 at once, before the scan. The event only says *when*
to look: what starts a run is the watcher's scan of the bucket, and its ledger keeps one run per
(key, ETag) however many times, and by whichever path, a drop was seen. So a duplicate or replayed
event starts nothing, and a lost one waits for the poll (CAUCE_WATCH_POLL_SECONDS).

Requests carry the token as `Authorization: Bearer <token>` (SeaweedFS, EventBridge API
destinations) or as the password of HTTP basic auth (SNS subscriptions, `https://u:<token>@...`).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from shared.layout import BATCH, INCOMING

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 1024 * 1024  # SNS caps a message at 256 KiB; S3 sends one record per event
WATCHED = (INCOMING, BATCH)


class EventError(ValueError):
    """A body that is no notification this endpoint knows: answered 400 with the reason."""


@dataclass(frozen=True)
class Written:
    """One object written, as a notification names it."""

    bucket: str
    key: str
    etag: str | None = None


def written(body: Any) -> list[Written]:
    """The objects a notification says were written (deletes and directories left out);
    EventError when the body is none of the known shapes."""
    if not isinstance(body, dict):
        raise EventError("expected a JSON object")
    if body.get("Type") == "Notification":  # SNS: the S3 event is a JSON text in Message
        try:
            return written(json.loads(body["Message"]))
        except (KeyError, TypeError, json.JSONDecodeError):
            raise EventError("an SNS notification whose Message is no JSON event") from None
    if body.get("Type") == "SubscriptionConfirmation":
        log.warning(
            "SNS asks to confirm the subscription of topic %s: open its SubscribeURL once, %s",
            body.get("TopicArn"),
            body.get("SubscribeURL"),
        )
        return []
    if "Records" in body:
        return list(_s3_records(body["Records"]))
    if body.get("Event") == "s3:TestEvent":  # sent once when a bucket's notification is set up
        return []
    if "detail-type" in body:
        return _eventbridge(body)
    if "event_type" in body:
        return _seaweedfs(body)
    raise EventError(
        "not an object-store notification: expected Records (S3), Type (SNS), detail-type "
        "(EventBridge) or event_type (SeaweedFS filer webhook)"
    )


def _s3_records(records: Any) -> Iterator[Written]:
    if not isinstance(records, list):
        raise EventError("Records must be a list")
    for index, record in enumerate(records):
        try:
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            key = unquote_plus(str(s3["object"]["key"]))  # S3 sends keys URL-encoded
            yield Written(str(s3["bucket"]["name"]), key, s3["object"].get("eTag"))
        except (KeyError, TypeError):
            raise EventError(
                f"Records[{index}] needs eventName, s3.bucket.name and s3.object.key"
            ) from None


def _eventbridge(body: dict[str, Any]) -> list[Written]:
    if body.get("source") != "aws.s3" or body["detail-type"] != "Object Created":
        return []
    try:
        detail = body["detail"]
        return [
            Written(
                str(detail["bucket"]["name"]),
                str(detail["object"]["key"]),
                detail["object"].get("etag"),
            )
        ]
    except (KeyError, TypeError):
        raise EventError(
            "an EventBridge event needs detail.bucket.name and detail.object.key"
        ) from None


def _seaweedfs(body: dict[str, Any]) -> list[Written]:
    if body["event_type"] not in ("create", "update"):
        return []
    entry = (body.get("message") or {}).get("new_entry") or {}
    if entry.get("is_directory"):
        return []
    path = str(body.get("key", ""))
    parts = path.split("/", 3)  # "", "buckets", bucket, key
    if len(parts) < 4 or parts[1] != "buckets" or not parts[3]:
        return []  # a filer path outside the S3 buckets
    return [Written(parts[2], parts[3])]


def authorized(request: Request, token: bytes) -> bool:
    """Whether the request carries the token, as a bearer token or a basic-auth password."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip().encode()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
        except ValueError:
            return False
    else:
        return False
    return hmac.compare_digest(given, token)


class Events:
    """The WSGI app: POST /events (and GET /health for probes)."""

    def __init__(self, *, bucket: str, token: bytes, wake: Callable[[], bool]) -> None:
        self.bucket, self.token, self.wake = bucket, token, wake

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_EVENT_BYTES
        try:
            response = self.handle(request)
        except HTTPException as exc:  # a body over the limit
            response = _json({"error": exc.description}, exc.code or 400)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path == "/health" and request.method == "GET":
            return _json({"status": "ok"}, 200)
        if request.path != "/events":
            return _json({"error": "not found: POST /events"}, 404)
        if request.method != "POST":
            return _json({"error": "use POST"}, 405)
        if not authorized(request, self.token):
            return _json(
                {"error": "send the events token: Authorization: Bearer <CAUCE_EVENTS_TOKEN>"},
                401,
            )
        try:
            body = json.loads(request.get_data())
            objects = written(body)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, EventError) else "the body is not JSON"
            return _json({"error": reason, "field": "body"}, 400)
        ours = [o for o in objects if o.bucket == self.bucket and o.key.startswith(WATCHED)]
        if ours and not self.wake():
            log.warning("an event named %s but the broker did not take the wake", ours[0].key)
        return _json({"accepted": len(ours), "ignored": len(objects) - len(ours)}, 202)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class _Handler(WSGIRequestHandler):
    timeout = 10  # seconds a connection may sit idle mid-request (set from the settings)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code) not in ("202", "200"):  # refusals are worth a line; each event is not
            super().log_request(code, size)


def serve_events(
    app: Events, *, host: str, port: int, idle_seconds: float
) -> tuple[BaseWSGIServer, threading.Thread]:
    """Serve `app` on a daemon thread (one thread per connection); stop with server.shutdown()."""
    handler = type("EventsHandler", (_Handler,), {"timeout": idle_seconds})
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, name="cauce-events", daemon=True)
    thread.start()
    log.info("accepting object-store events on http://%s:%s/events", host, server.server_port)
    return server, thread
