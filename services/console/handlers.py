"""App-wide hooks: refuse cross-site form posts, and map domain errors to HTTP codes."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, SecurityError

from shared.errors import Conflict, DataError, NotFound, TransientError

log = logging.getLogger(__name__)

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def same_origin() -> Response | None:
    """Refuse a state-changing request that a page of another site made the browser send."""
    if request.method not in UNSAFE:
        return None
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return None  # not a browser (curl, scripts): there is no cross-site page to fear
    if urlparse(origin).netloc != request.host:
        return _error(f"cross-site request refused (origin {origin})", "Origin", 403)
    return None


def _error(message: str, field: str | None, status: int) -> Response:
    """A JSON body for the API, a page for a person."""
    if request.path.startswith("/api/"):
        response = jsonify({"error": message, "field": field})
    else:
        response = Response(
            render_template("error.html", message=message, field=field, status=status)
        )
    response.status_code = status
    return response


def http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors (404, 405, 413, ...) in the console's shape."""
    status = exc.code or 500
    if status == 413:
        limit = current_app.extensions["cauce.settings"].max_upload_bytes
        return _error(f"the file is larger than the limit of {limit} bytes", "file", 413)
    return _error(exc.description or exc.name, None, status)


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


def store_error(exc: Exception) -> Response:
    """The object store failed or could not be reached."""
    log.warning("object store error on %s: %s", request.path, exc)
    return _error(f"the object store could not answer: {exc}", None, 503)


def unexpected(exc: Exception) -> Response:
    """A bug: log it, and say so without the details."""
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(f"internal error: {type(exc).__name__}", None, 500)


def register_handlers(app: Flask) -> None:
    """Install the origin check and one handler per kind of error."""
    app.before_request(same_origin)
    codes: list[tuple[type[Exception], int]] = [
        (NotFound, 404),
        (Conflict, 409),
        (DataError, 422),
        (TransientError, 503),
    ]
    for kind, status in codes:
        app.register_error_handler(
            kind,
            lambda exc, status=status: _error(str(exc), getattr(exc, "field", None), status),
        )
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(BotoCoreError, store_error)
    app.register_error_handler(ClientError, store_error)
    app.register_error_handler(Exception, unexpected)
