"""The app-wide hooks: one error handler mapping domain errors to HTTP, and the version header."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from services.serve.metrics import RequestCounter
from shared.errors import DataError, RequestError

log = logging.getLogger(__name__)


def _error(message: str, field: str | None, status: int) -> tuple[Response, int]:
    return jsonify({"error": message, "field": field}), status


def name_version(response: Response) -> Response:
    """Every answer about a model (errors included) names the version that gave it."""
    model = g.get("model")
    if model is not None:
        response.headers["X-Model-Version"] = str(model.version)
        response.headers["X-Model-Name"] = model.pipeline
        if request.method == "POST":  # predictions only, not metadata reads
            counter: RequestCounter = current_app.extensions["cauce.requests"]
            counter.count(model.pipeline, str(model.version), response.status_code)
    return response


def register_handlers(app: Flask) -> None:
    """Map domain errors to HTTP codes; every error body is {"error": message, "field": name}."""
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
