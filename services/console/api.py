"""The JSON API: every page's data, and the console's two actions (upload, move an alias)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from services.console import actions, catalog, context, specform
from shared.client.runlist import runs_page
from shared.errors import DataError
from shared.registry import list_pipelines
from shared.results import STATES

api = Blueprint("api", __name__, url_prefix="/api")
MAX_PAGE = 200


def page_args() -> dict[str, Any]:
    """The runs filter from the query string, checked."""
    try:
        limit = int(request.args.get("limit", "25"))
    except ValueError:
        raise DataError("limit must be a whole number", field="limit") from None
    state = request.args.get("state") or None
    if state is not None and state not in STATES:
        raise DataError(f"state must be one of: {', '.join(STATES)}", field="state")
    return {
        "before": request.args.get("before") or None,
        "limit": max(1, min(limit, MAX_PAGE)),
        "pipeline": request.args.get("pipeline") or None,
        "state": state,
    }


@api.get("/health")
def health() -> Response:
    """The console answers (it needs no worker to be up)."""
    return jsonify({"live": True})


@api.get("/runs")
def runs() -> Response:
    """A page of runs, newest first; `next_before` is the cursor of the next page."""
    page = runs_page(context.reader(), **page_args())
    return jsonify(page.as_json())


@api.get("/runs/<run_id>")
def run(run_id: str) -> Response:
    """One run in full: stages, input and profile, trials, evaluation report."""
    return jsonify(catalog.run_detail(context.store(), run_id))


@api.get("/models")
def models() -> Response:
    """Every pipeline's versions, aliases and alias history."""
    store = context.store()
    return jsonify([catalog.model_overview(store, name) for name in list_pipelines(store)])


@api.get("/models/<pipeline>")
def pipeline_models(pipeline: str) -> Response:
    """One pipeline's versions, aliases and alias history."""
    return jsonify(catalog.model_overview(context.store(), pipeline))


@api.post("/models/<pipeline>/aliases/<alias>")
def move(pipeline: str, alias: str) -> Response:
    """Move an alias to a version: {"version": 1, "expected": 2, "reason": "..."}."""
    body = request.get_json(silent=True) or {}
    version, expected = body.get("version"), body.get("expected")
    if not isinstance(version, int) or not isinstance(expected, int | None):
        raise DataError('send {"version": N, "expected": M} with whole numbers', field="version")
    pointer = actions.roll_back(
        context.store(),
        pipeline,
        version=version,
        expected=expected,
        alias=alias,
        reason=str(body.get("reason", "")),
        broker_url=context.settings().broker_url,
    )
    return jsonify(pointer)


@api.post("/uploads")
def upload() -> tuple[Response, int]:
    """Upload a file (multipart `file`, field `pipeline`) into the drop zone."""
    file = request.files.get("file")
    if file is None or not file.filename:
        raise DataError("choose a file to upload", field="file")
    drop = actions.upload(
        context.store(),
        pipeline=request.form.get("pipeline", "").strip(),
        filename=file.filename,
        data=file.read(),
    )
    return jsonify(drop), 201


@api.get("/uploads/run")
def upload_run() -> Response:
    """The run the watcher started for an upload, once it exists (`run_id` is null until then)."""
    args = {name: request.args.get(name, "") for name in ("key", "etag", "after")}
    if not all(args.values()):
        raise DataError("key, etag and after are required", field="key")
    return jsonify({"run_id": actions.upload_run(context.store(), **args)})


@api.get("/pipelines")
def pipelines() -> Response:
    """Every pipeline with a spec, a drop or a model."""
    return jsonify(catalog.known_pipelines(context.store()))


@api.get("/pipelines/<pipeline>/spec")
def get_spec(pipeline: str) -> Response:
    """The pipeline's spec YAML (empty: all defaults)."""
    text = specform.load_spec_text(context.store(), pipeline)
    return jsonify({"pipeline": pipeline, "text": text})


@api.put("/pipelines/<pipeline>/spec")
def put_spec(pipeline: str) -> tuple[Response, int]:
    """Replace the spec with the YAML body; 422 names each bad field."""
    raw = specform.parse_mapping(request.get_data(as_text=True))
    found = specform.problems(raw)
    if found:
        field, message = next(iter(found.items()))
        body = {"error": message, "field": field, "problems": found}
        return jsonify(body), 422
    text = specform.save_spec(context.store(), pipeline, raw)
    return jsonify({"pipeline": pipeline, "text": text}), 200
