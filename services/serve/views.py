"""Thin HTTP views: pick the model, parse the body, call predict, shape the answer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, jsonify, request

from services.serve import predict as scoring
from services.serve import v2
from services.serve.metrics import ServeMetrics
from services.serve.models import LoadedModel, ModelCache
from shared.columns import Columns
from shared.errors import NotFound, RequestError

log = logging.getLogger(__name__)

bp = Blueprint("serve", __name__)
PIPELINE_HEADER = "X-Cauce-Pipeline"


def _cache() -> ModelCache:
    cache: ModelCache = current_app.extensions["cauce.models"]
    return cache


def _model(pipeline: str, *, field: str = "pipeline") -> LoadedModel:
    """The loaded model of `pipeline`, remembered so the response can name its version."""
    try:
        g.model = _cache().get(pipeline)
    except NotFound:
        known = ", ".join(_cache().models()) or "none yet"
        raise RequestError(
            f"no model is deployed for pipeline {pipeline!r} (deployed: {known})",
            field=field,
            status=404,
        ) from None
    model: LoadedModel = g.model
    return model


def _default_model() -> LoadedModel:
    """The model of the pipeline named by the header, or of the only one deployed."""
    named = request.headers.get(PIPELINE_HEADER)
    if named:
        return _model(named, field=PIPELINE_HEADER)
    deployed = list(_cache().models())
    if len(deployed) == 1:
        return _model(deployed[0])
    raise RequestError(
        f"{len(deployed)} pipelines are deployed ({', '.join(deployed) or 'none'}); name one "
        f"with the {PIPELINE_HEADER} header or POST to /invocations/<pipeline>",
        field=PIPELINE_HEADER,
        status=404 if not deployed else 400,
    )


def _json_body() -> Any:
    kind = request.mimetype
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise RequestError(
            f"Content-Type {kind!r} is not supported; send application/json",
            field="Content-Type",
            status=415,
        )
    return scoring.decode_json(request.get_data())


def _mlflow_columns(model: LoadedModel) -> Columns:
    if request.mimetype == "text/csv":
        return scoring.read_csv(request.get_data())
    return scoring.parse_mlflow(_json_body(), model.columns)


def _score(model: LoadedModel, raw: Columns) -> dict[str, Any]:
    """Check the columns against the compiled signature and score them."""
    return scoring.answer(model.scorer.score(model.inputs.check(raw)), model.labels)


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), mimetype="application/json")


@bp.post("/invocations")
def invocations_default() -> Response:
    """MLflow scoring on the pipeline named by the header (or the only one)."""
    return _score_mlflow(_default_model())


@bp.post("/invocations/<pipeline>")
def invocations(pipeline: str) -> Response:
    """MLflow scoring on the named pipeline."""
    return _score_mlflow(_model(pipeline))


def _score_mlflow(model: LoadedModel) -> Response:
    """Predictions, probabilities for classifiers, and the model that answered."""
    answer = _score(model, _mlflow_columns(model))
    return _json({**answer, "model": {"name": model.pipeline, "version": model.version}})


@bp.post("/v2/models/<pipeline>/infer")
@bp.post("/v2/models/<pipeline>/versions/<version>/infer")
def infer(pipeline: str, version: str | None = None) -> Response:
    """Open Inference Protocol v2 inference."""
    model = _pinned(pipeline, version)
    payload = _json_body()
    answer = _score(model, v2.parse_infer(payload, model.columns))
    request_id = payload.get("id") or str(uuid.uuid4())
    return _json(
        v2.infer_response(
            answer,
            classes=model.labels,
            name=model.pipeline,
            version=model.version,
            request_id=str(request_id),
        )
    )


def _pinned(pipeline: str, version: str | None) -> LoadedModel:
    model = _model(pipeline)
    if version is not None and version != str(model.version):
        raise RequestError(
            f"pipeline {pipeline!r} serves version {model.version}, not {version}",
            field="version",
            status=404,
        )
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
    models = [
        {
            "name": m.pipeline,
            "version": m.version,
            "task": m.task,
            "runtime": m.scorer.runtime,
            "loaded": m.loaded,
        }
        for m in _cache().models().values()
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
