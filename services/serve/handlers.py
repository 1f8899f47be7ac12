"""The app-wide hooks: bearer-token check, the version header and metrics, and one error handler
mapping domain errors to HTTP."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from services.serve.invoke import TOKEN_MESSAGE, token_matches
from services.serve.metrics import ServeMetrics
from shared.errors import DataError, RequestError

log = logging.getLogger(__name__)

# Probes of an orchestrator carry no token; everything else needs one when a token is set.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


def _error(message: str, field: str | None, status: int) -> tuple[Response, int]:
    return jsonify({"error": message, "field": field}), status


def authorize(token: bytes | None) -> None:
    """Refuse a request without `Authorization: Bearer <token>`, compared in constant time."""
    g.started = time.perf_counter()
    if token is None or request.path in OPEN_PATHS:
        return
    if not token_matches(request.headers.get("Authorization", ""), token):
        raise RequestError(TOKEN_MESSAGE, field="Authorization", status=401)


def name_version(response: Response) -> Response:
    """Every answer about a model (errors included) names the version that gave it."""
    model = g.get("model")
    if model is not None:
        response.headers["X-Model-Version"] = str(model.version)
        response.headers["X-Model-Name"] = model.pipeline
    if request.method == "POST" and "started" in g:  # predictions only, not metadata reads
        served: ServeMetrics = current_app.extensions["cauce.metrics"]
        pipeline, version = (model.pipeline, str(model.version)) if model else ("", "")
        served.observe(pipeline, version, response.status_code, time.perf_counter() - g.started)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cauce"'
    return response


def register_handlers(app: Flask, *, token: bytes | None = None) -> None:
    """Check the token, map domain errors to HTTP codes; every error body is
    {"error": message, "field": name}."""
    app.before_request(lambda: authorize(token))
    app.after_request(name_version)

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError) -> tuple[Response, int]:
        return _error(str(exc), exc.field, exc.status)

    @app.errorhandler(DataError)
    def data_error(exc: DataError) -> tuple[Response, int]:
        return _error(str(exc), exc.field, 422)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        if status == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            return _error(f"the request body is larger than {limit} bytes", "body", 413)
        return _error(exc.description or exc.name, None, status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error(f"internal error: {type(exc).__name__}", None, 500)
