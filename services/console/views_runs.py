"""The runs list and the run page; `?fragment=1` returns only the part that updates live."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from services.console import catalog, context, present
from services.console.api import page_args
from shared.client.render import blend_line, compared_on, search_line
from shared.client.runlist import runs_page
from shared.results import STATES
from shared.runs import is_terminal

runs_bp = Blueprint("runs", __name__)


@runs_bp.get("/")
def home() -> Response:
    """The runs page is the front page."""
    return redirect(url_for("runs.runs"))


@runs_bp.get("/runs")
def runs() -> str:
    """Runs, newest first, filtered by pipeline and state, live while any is in progress."""
    args = page_args()
    page = runs_page(context.reader(), **args)
    live = any(not is_terminal(view) for view in page.runs)
    filters = {name: args[name] for name in ("pipeline", "state") if args[name]}
    fragment = bool(request.args.get("fragment"))
    return render_template(
        "_runs_table.html" if fragment else "runs.html",
        page=page,
        args=args,
        filters=filters,
        query={**filters, "before": args["before"]} if args["before"] else filters,
        live=live,
        states=STATES,
        pipelines=[] if fragment else catalog.known_pipelines(context.store()),
        present=present,
    )


@runs_bp.get("/runs/<run_id>")
def run(run_id: str) -> str:
    """One run: timeline, error, input and profile, trials, and the evaluation report."""
    detail = catalog.run_detail(context.store(), run_id)
    report = detail["report"] or {}
    template = "_run_body.html" if request.args.get("fragment") else "run.html"
    return render_template(
        template,
        run=detail,
        live=not is_terminal(detail),
        timeline=present.timeline(detail["stages"]),
        metric_rows=present.metric_rows(report),
        confusion=present.confusion(report),
        plots=present.plots(report),
        trials=present.ranked_trials(detail["trials"], (detail["spec"] or {}).get("metric")),
        search=search_line(detail["search"]) if detail.get("search") else None,
        compared=compared_on(detail),
        blend=blend_line(detail),
        present=present,
    )
