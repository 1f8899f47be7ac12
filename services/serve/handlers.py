"""The Flask app's hooks, for everything but predictions (invoke.py answers those): the bearer
token, the headers naming the model, the count in /metrics, and one handler for every error, all
as services/serve/answers.py says."""

from __future__ import annotations

import time

from flask import Flask, Response, current_app, g, jsonify, request

from services.serve import answers
from services.serve.metrics import ServeMetrics

# Probes of an orchestrator carry no token; everything else needs one when a token is set.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
# Ground truth is not a prediction: it is not counted among the prediction requests.
UNCOUNTED = frozenset({"serve.feedback"})


def authorize(token: bytes | None) -> None:
    """Refuse a request without `Authorization: Bearer <token>`, except the health probes."""
    g.started = time.perf_counter()
    if request.path not in OPEN_PATHS:
        answers.check_token(request.headers.get("Authorization", ""), token)


def name_version(response: Response) -> Response:
    """Name the model that answered, and count a POST in /metrics.

    Every POST the app sees is one that invoke.py passed on because its path is not a prediction
    route (POST /v2/models/iris, /invocations/, /metrics, ...): Flask answers it 404, 405 or 401,
    and it is counted under no model, as before the fast path took the predictions over. Ground
    truth (POST /v2/models/<pipeline>/feedback) is the one POST Flask answers itself, and it is
    not a prediction, so it is not counted.
    """
    model = g.get("model")
    for name, value in answers.model_headers(model, response.status_code):
        response.headers[name] = value
    if request.method == "POST" and "started" in g and request.endpoint not in UNCOUNTED:
        served: ServeMetrics = current_app.extensions["cauce.metrics"]
        answers.count(served, model, response.status_code, g.started)
    return response


def answer_error(exc: Exception) -> tuple[Response, int]:
    """Any error raised under Flask, answered with the status and body answers.py gives."""
    status, body = answers.outcome(
        exc,
        max_bytes=current_app.config["MAX_CONTENT_LENGTH"],
        method=request.method,
        path=request.path,
    )
    return jsonify(body), status


def register_handlers(app: Flask, *, token: bytes | None = None) -> None:
    """Check the token, name the model, count POSTs and answer every error the same way."""
    app.before_request(lambda: authorize(token))
    app.after_request(name_version)
    app.register_error_handler(Exception, answer_error)
