"""Thin HTTP views of everything but predictions (services/serve/invoke.py answers those):
model metadata and readiness, listings, ground truth, metrics and health."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request

from services.serve import v2
from services.serve.feedback import parse_feedback, store_feedback
from services.serve.invoke import pinned
from services.serve.metrics import ServeMetrics
from services.serve.models import LoadedModel, ModelCache
from shared.errors import RequestError, TransientError

log = logging.getLogger(__name__)

bp = Blueprint("serve", __name__)


def _cache() -> ModelCache:
    cache: ModelCache = current_app.extensions["cauce.models"]
    return cache


def _pinned(pipeline: str, version: str | None = None) -> LoadedModel:
    """The model of `pipeline` (and `version`), remembered so the response can name it."""
    g.model = pinned(_cache(), pipeline, version)
    model: LoadedModel = g.model
    return model


@bp.get("/v2/models/<pipeline>")
@bp.get("/v2/models/<pipeline>/versions/<version>")
def metadata(pipeline: str, version: str | None = None) -> Response:
    """OIP model metadata: inputs from the signature, outputs, and the version's metrics."""
    model = _pinned(pipeline, version)
    return jsonify(v2.model_metadata(dict(model.record), list(model.signature)))


@bp.get("/v2/models/<pipeline>/ready")
def model_ready(pipeline: str) -> Response:
    """OIP model readiness: 200 when loaded, 404 naming the pipeline otherwise."""
    model = _pinned(pipeline)
    return jsonify({"name": model.pipeline, "version": str(model.version), "ready": True})


@bp.post("/v2/models/<pipeline>/feedback")
def feedback(pipeline: str) -> Response:
    """Store the true labels (or values) of logged requests, for the live metrics."""
    model = _pinned(pipeline)
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise RequestError('the body must be JSON: {"feedback": [...]}', field="body")
    rows = parse_feedback(body, task=model.task)
    try:
        store_feedback(_cache().store, model.pipeline, rows)
    except TransientError as exc:
        raise RequestError(f"the feedback was not stored: {exc}", status=503) from None
    requests = len({row["request_id"] for row in rows})
    return jsonify({"pipeline": model.pipeline, "rows": len(rows), "requests": requests})


@bp.get("/v2/models")
@bp.get("/models")
def listing() -> Response:
    """Every deployed model, whichever worker takes the request."""
    models = [
        {
            "name": m.pipeline,
            "version": m.version,
            "task": m.task,
            "runtime": m.scorer.runtime,
            "loaded": m.loaded,
        }
        for m in _cache().listed().values()
    ]
    return jsonify({"models": models})


@bp.get("/v2")
def server_metadata() -> Response:
    """OIP server metadata."""
    return jsonify({"name": "cauce-serve", "version": "1", "extensions": []})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics: requests, errors and latency per model and version, models served."""
    served: ServeMetrics = current_app.extensions["cauce.metrics"]
    text, content_type = served.render()
    return Response(text, content_type=content_type)


@bp.get("/v2/health/live")
def live() -> Response:
    """The process answers."""
    return jsonify({"live": True})


@bp.get("/v2/health/ready")
def ready() -> tuple[Response, int]:
    """Ready once the registry was read and every production model is loaded."""
    status = _cache().status()
    return jsonify(status), 200 if status["ready"] else 503
