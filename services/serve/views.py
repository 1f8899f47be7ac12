"""Thin HTTP views: pick the model, parse the body, call predict, shape the answer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from services.serve import predict as scoring
from services.serve import v2
from services.serve.models import LoadedModel, ModelCache
from shared.errors import DataError, NotFound, RequestError

log = logging.getLogger(__name__)

bp = Blueprint("serve", __name__)
PIPELINE_HEADER = "X-Cauce-Pipeline"


def _cache() -> ModelCache:
    cache: ModelCache = current_app.extensions["cauce.models"]
    return cache


def _model(pipeline: str) -> LoadedModel:
    """The loaded model of `pipeline`, remembered so the response can name its version."""
    try:
        g.model = _cache().get(pipeline)
    except NotFound:
        known = ", ".join(_cache().models()) or "none yet"
        raise RequestError(f"no model is deployed for pipeline {pipeline!r} (deployed: {known})",
                           field="pipeline", status=404) from None
    model: LoadedModel = g.model
    return model


def _only_pipeline() -> str:
    """The pipeline named by the header, or the only one deployed."""
    named = request.headers.get(PIPELINE_HEADER)
    if named:
        return named
    deployed = list(_cache().models())
    if len(deployed) == 1:
        return deployed[0]
    raise RequestError(
        f"{len(deployed)} pipelines are deployed ({', '.join(deployed) or 'none'}); name one "
        f"with the {PIPELINE_HEADER} header or POST to /invocations/<pipeline>",
        field=PIPELINE_HEADER, status=404 if not deployed else 400)


def _json_body() -> Any:
    kind = request.mimetype
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise RequestError(f"Content-Type {kind!r} is not supported; send application/json",
                           field="Content-Type", status=415)
    return scoring.decode_json(request.get_data())


def _mlflow_frame(model: LoadedModel) -> Any:
    if request.mimetype == "text/csv":
        raw = scoring.read_csv(request.get_data())
    else:
        raw = scoring.parse_mlflow(_json_body(), model.columns)
    return scoring.check(raw, list(model.signature))


@bp.post("/invocations")
def invocations_default() -> Response:
    """MLflow scoring on the pipeline named by the header (or the only one)."""
    return invocations(_only_pipeline())


@bp.post("/invocations/<pipeline>")
def invocations(pipeline: str) -> Response:
    """MLflow scoring: predictions, probabilities for classifiers, and the model that answered."""
    model = _model(pipeline)
    answer = scoring.predict(model.estimator, _mlflow_frame(model), task=model.task)
    answer.pop("classes", None)
    return jsonify({**answer, "model": {"name": model.pipeline, "version": model.version}})


@bp.post("/v2/models/<pipeline>/infer")
@bp.post("/v2/models/<pipeline>/versions/<version>/infer")
def infer(pipeline: str, version: str | None = None) -> Response:
    """Open Inference Protocol v2 inference."""
    model = _pinned(pipeline, version)
    payload = _json_body()
    frame = scoring.check(v2.parse_infer(payload, model.columns), list(model.signature))
    answer = scoring.predict(model.estimator, frame, task=model.task)
    request_id = payload.get("id") or str(uuid.uuid4())
    return jsonify(v2.infer_response(answer, name=model.pipeline, version=model.version,
                                     request_id=str(request_id)))


def _pinned(pipeline: str, version: str | None) -> LoadedModel:
    model = _model(pipeline)
    if version is not None and version != str(model.version):
        raise RequestError(f"pipeline {pipeline!r} serves version {model.version}, not {version}",
                           field="version", status=404)
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
    model = _model(pipeline)
    return jsonify({"name": model.pipeline, "version": str(model.version), "ready": True})


@bp.get("/v2/models")
@bp.get("/models")
def listing() -> Response:
    """Every model this replica serves."""
    models = [{"name": m.pipeline, "version": m.version, "task": m.task, "loaded": m.loaded}
              for m in _cache().models().values()]
    return jsonify({"models": models})


@bp.get("/v2")
def server_metadata() -> Response:
    """OIP server metadata."""
    return jsonify({"name": "cauce-serve", "version": "1", "extensions": []})


@bp.get("/v2/health/live")
def live() -> Response:
    """The process answers."""
    return jsonify({"live": True})


@bp.get("/v2/health/ready")
def ready() -> tuple[Response, int]:
    """Ready once the registry was read and every production model is loaded."""
    status = _cache().status()
    return jsonify(status), 200 if status["ready"] else 503


@bp.after_app_request
def name_version(response: Response) -> Response:
    """Every answer about a model names the version that gave it."""
    model = g.get("model")
    if model is not None:
        response.headers["X-Model-Version"] = str(model.version)
        response.headers["X-Model-Name"] = model.pipeline
    return response


def _error(message: str, field: str | None, status: int) -> tuple[Response, int]:
    return jsonify({"error": message, "field": field}), status


def register_errors(app: Flask) -> None:
    """Map domain errors to HTTP codes; every error body names the offending field."""

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError) -> tuple[Response, int]:
        return _error(str(exc), exc.field, exc.status)

    @app.errorhandler(DataError)
    def data_error(exc: DataError) -> tuple[Response, int]:
        return _error(str(exc), exc.field, 422)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        field = "body" if status == 413 else None
        if status == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            return _error(f"the request body is larger than {limit} bytes", field, 413)
        return _error(exc.description or exc.name, field, status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error(f"internal error: {type(exc).__name__}", None, 500)
