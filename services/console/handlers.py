"""App-wide hooks: refuse cross-site form posts and untrusted hosts, and one mapping from every
error to its HTTP status and message, answered as JSON under /api/ and as a page elsewhere."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, SecurityError

from shared.errors import Conflict, DataError, NotFound, TransientError

log = logging.getLogger(__name__)

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
CODES: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (DataError, 422),
    (TransientError, 503),
)


def same_origin() -> Response | None:
    """Refuse a state-changing request that a page of another site made the browser send."""
    if request.method not in UNSAFE:
        return None
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return None  # not a browser (curl, scripts): there is no cross-site page to fear
    if urlparse(origin).netloc != request.host:
        return respond(f"cross-site request refused (origin {origin})", "Origin", 403)
    return None


def respond(message: str, field: str | None, status: int) -> Response:
    """A JSON body for the API, a page for a person."""
    if request.path.startswith("/api/"):
        response = jsonify({"error": message, "field": field})
    else:
        response = Response(
            render_template("error.html", message=message, field=field, status=status)
        )
    response.status_code = status
    return response


def trusted_host() -> Response | None:
    """Answer a request for an untrusted Host before any other hook: Flask found it while
    routing, and the token check and the pages would otherwise try to build links from it."""
    refused = request.routing_exception
    return untrusted_host(refused) if isinstance(refused, SecurityError) else None


def untrusted_host(exc: SecurityError) -> Response:
    """A Host header the console does not answer to (DNS rebinding, or a name to add). Plain JSON
    whatever the path: a page cannot be rendered, its links are built from the refused host."""
    message = (
        f"{exc.description} The console answers only to the names in "
        "CAUCE_CONSOLE_TRUSTED_HOSTS; add this one there to open the console under it."
    )
    response = jsonify({"error": message, "field": "Host"})
    response.status_code = 400
    return response


def outcome(exc: Exception, *, max_upload: int | None) -> tuple[int, str, str | None]:
    """The status, message and field that answer `exc`; a store failure or a bug is logged."""
    if isinstance(exc, HTTPException):  # werkzeug's 404, 405, 413, ...
        if exc.code == 413:
            return 413, f"the file is larger than the limit of {max_upload} bytes", "file"
        return exc.code or 500, exc.description or exc.name, None
    for kind, status in CODES:
        if isinstance(exc, kind):
            return status, str(exc), getattr(exc, "field", None)
    if isinstance(exc, BotoCoreError | ClientError):
        log.warning("object store error on %s: %s", request.path, exc)
        return 503, f"the object store could not answer: {exc}", None
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return 500, f"internal error: {type(exc).__name__}", None


def answer_error(exc: Exception) -> Response:
    """Any error raised under Flask, answered as outcome() says."""
    limit = current_app.extensions["cauce.settings"].max_upload_bytes
    status, message, field = outcome(exc, max_upload=limit)
    return respond(message, field, status)


def register_handlers(app: Flask) -> None:
    """Install the origin check and the one error handler."""
    app.before_request(same_origin)
    app.register_error_handler(Exception, answer_error)
