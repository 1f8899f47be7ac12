"""The models page: versions, metrics, lineage, aliases and their history, and the rollback."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from services.console import actions, catalog, context
from services.console.drift import drift_reports, drift_view
from shared.registry import get_alias, list_pipelines

models_bp = Blueprint("models", __name__)


@models_bp.get("/models")
def models() -> str:
    """Every pipeline's versions, newest first, with aliases and alias history."""
    store = context.store()
    overviews = [catalog.model_overview(store, name) for name in list_pipelines(store)]
    return render_template("models.html", overviews=overviews, moved=request.args.get("moved"))


@models_bp.get("/models/<pipeline>")
def model(pipeline: str) -> str:
    """One pipeline's versions, aliases and history: the models page for it alone."""
    store = context.store()
    if pipeline not in list_pipelines(store):
        abort(404, description=f"no models for pipeline {pipeline!r}")
    overviews = [catalog.model_overview(store, pipeline)]
    return render_template("models.html", overviews=overviews, moved=request.args.get("moved"))


@models_bp.get("/models/<pipeline>/drift")
def drift(pipeline: str) -> str:
    """How far the served inputs of a version moved from its training data, over time."""
    store = context.store()
    if pipeline not in list_pipelines(store):
        abort(404, description=f"no models for pipeline {pipeline!r}")
    version = _version_arg("version") if request.args.get("version") else None
    reports = drift_reports(store, pipeline)
    versions = sorted({int(v) for r in reports for v in r["versions"]}, reverse=True)
    view = drift_view(reports, version)
    return render_template("drift.html", pipeline=pipeline, versions=versions, **view)


def _version_arg(name: str) -> int:
    value = request.values.get(name, "")
    if not value.isdigit():
        abort(400, description=f"{name} must be a version number")
    return int(value)


@models_bp.get("/models/<pipeline>/rollback")
def confirm(pipeline: str) -> str:
    """The confirmation step: what production is now, and what it will become."""
    overview = catalog.model_overview(context.store(), pipeline)
    version = _version_arg("version")
    target = next((v for v in overview["versions"] if v["version"] == version), None)
    if target is None:
        abort(404, description=f"pipeline {pipeline!r} has no version {version}")
    current = get_alias(context.store(), pipeline)
    now_at = current["version"] if current else None
    current_version = next((v for v in overview["versions"] if v["version"] == now_at), None)
    return render_template(
        "rollback.html", pipeline=pipeline, target=target, current=current_version, now_at=now_at
    )


@models_bp.post("/models/<pipeline>/rollback")
def roll_back(pipeline: str) -> Response:
    """Move production to the confirmed version, if it has not moved since the user looked."""
    expected = request.form.get("expected", "")
    pointer = actions.roll_back(
        context.store(),
        pipeline,
        version=_version_arg("version"),
        expected=int(expected) if expected.isdigit() else None,
        reason=request.form.get("reason", ""),
        broker_url=context.settings().broker_url,
    )
    moved = f"{pipeline}:{pointer['version']}"
    return redirect(url_for("models.models", moved=moved, _anchor=f"p-{pipeline}"), code=303)
