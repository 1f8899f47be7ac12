"""Start a run (upload a file for a pipeline) and view or edit a pipeline's spec."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from services.console import actions, catalog, context, specform
from shared.errors import DataError, SpecError
from shared.storage import check_name

start_bp = Blueprint("start", __name__)


@start_bp.get("/start")
def start() -> str:
    """The upload form, with the known pipelines to choose from."""
    return render_template("start.html", pipelines=catalog.known_pipelines(context.store()))


@start_bp.post("/start")
def upload() -> Response | tuple[str, int]:
    """Put the file in the drop zone, then wait for the run the watcher starts."""
    file = request.files.get("file")
    pipeline = request.form.get("pipeline", "").strip()
    try:
        if file is None or not file.filename:
            raise DataError("choose a file to upload", field="file")
        drop = actions.upload(
            context.store(), pipeline=pipeline, filename=file.filename, data=file.read()
        )
    except DataError as exc:
        pipelines = catalog.known_pipelines(context.store())
        page = render_template(
            "start.html", pipelines=pipelines, error=str(exc), field=exc.field, pipeline=pipeline
        )
        return page, 422
    args = {k: drop[k] for k in ("key", "etag", "after")}
    return redirect(url_for("start.waiting", **args), code=303)


@start_bp.get("/start/wait")
def waiting() -> Response | str:
    """Go to the run once the watcher has started it; until then, a page that reloads itself."""
    args = {name: request.args.get(name, "") for name in ("key", "etag", "after")}
    run_id = actions.upload_run(context.store(), **args) if all(args.values()) else None
    if run_id:
        return redirect(url_for("runs.run", run_id=run_id))
    return render_template("waiting.html", key=args["key"])


@start_bp.get("/pipelines/edit")
def pick() -> Response:
    """Open the spec editor of the pipeline named in the form."""
    name = check_name(request.args.get("pipeline", "").strip())
    return redirect(url_for("start.spec", pipeline=name))


@start_bp.get("/pipelines/<pipeline>/spec")
def spec(pipeline: str) -> str:
    """The spec as a form, each field with its current value."""
    check_name(pipeline)
    text = specform.load_spec_text(context.store(), pipeline)
    try:
        values = specform.form_values(specform.parse_mapping(text))
        found = {}
    except SpecError as exc:
        values, found = specform.form_values({}), {"spec": str(exc)}
    return _editor(pipeline, text, values, found, saved=bool(request.args.get("saved")))


@start_bp.post("/pipelines/<pipeline>/spec")
def save(pipeline: str) -> Response | tuple[str, int]:
    """Check the edited spec; save it, or show each problem beside its field."""
    store = context.store()
    text = specform.load_spec_text(store, pipeline)
    try:
        raw = specform.apply_form(specform.parse_mapping(text), request.form)
        found = specform.problems(raw)
    except SpecError as exc:
        found = {exc.field or "spec": str(exc)}
    if found:
        return _editor(pipeline, text, dict(request.form), found, saved=False), 422
    specform.save_spec(store, pipeline, raw)
    return redirect(url_for("start.spec", pipeline=pipeline, saved=1), code=303)


def _editor(
    pipeline: str, text: str, values: dict[str, str], found: dict[str, str], *, saved: bool
) -> str:
    return render_template(
        "spec.html",
        pipeline=pipeline,
        text=text,
        values=values,
        problems=found,
        saved=saved,
        fields=specform.FIELDS,
    )
