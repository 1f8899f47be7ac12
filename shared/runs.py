"""Run records: `runs/<id>/run.json` and each stage's `status.json`, read as one view."""

from __future__ import annotations

from typing import Any

from shared.errors import Conflict, NotFound
from shared.ids import now, seconds_between
from shared.layout import RUNS, run_key, stage_key
from shared.pipeline import STAGES
from shared.results import TERMINAL
from shared.storage import Store
from shared.trials import search_progress


def create_run(
    store: Store,
    *,
    run_id: str,
    pipeline: str,
    source: dict[str, Any],
    spec_text: str | None,
    options: dict[str, Any] | None = None,
    rejected: str | None = None,
) -> dict[str, Any]:
    """Write `run.json` once; a second call for the same id keeps the first record. A run
    `rejected` with a reason is a drop the watcher could not start (it ends as it is written)."""
    record: dict[str, Any] = {
        "run_id": run_id,
        "pipeline": pipeline,
        "created": now(),
        "source": source,
        "spec": spec_text,
        "options": options or {},
    }
    if rejected is not None:
        record["rejected"] = rejected
    try:
        store.put_json(run_key(run_id), record, if_none_match=True)
    except Conflict:
        return dict(store.get_json(run_key(run_id)))
    return record


def read_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run's `run.json`; NotFound when there is no such run."""
    return dict(store.get_json(run_key(run_id)))


def read_status(store: Store, run_id: str, stage: str) -> dict[str, Any] | None:
    """A stage's status, or None when the stage has not started."""
    try:
        return dict(store.get_json(stage_key(run_id, stage, "status.json")))
    except NotFound:
        return None


def write_status(store: Store, run_id: str, stage: str, **fields: Any) -> dict[str, Any]:
    """Write a stage's status (the last object a stage writes)."""
    status = {"stage": stage, "run_id": run_id, **fields}
    if status.get("started") and status.get("finished"):
        status["seconds"] = seconds_between(status["started"], status["finished"])
    store.put_json(stage_key(run_id, stage, "status.json"), status)
    return status


def _stage_view(stage: str, status: dict[str, Any] | None, *, skipped: bool) -> dict[str, Any]:
    status = status or {}
    return {
        "stage": stage,
        "state": status.get("state", "skipped" if skipped else "pending"),
        "started": status.get("started"),
        "finished": status.get("finished"),
        "seconds": status.get("seconds"),
        "error": status.get("error"),
        "attempts": status.get("attempts"),
        "cached_from": status.get("cached_from"),
    }


def _state(stages: list[dict[str, Any]], *, ended: bool) -> str:
    if any(s["state"] == "failed" for s in stages):
        return "failed"
    if ended:
        return "succeeded"
    if any(s["state"] != "pending" for s in stages):
        return "running"
    return "queued"


def describe_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run as users see it: state, error, per-stage states and the headline results."""
    record = read_run(store, run_id)
    rejected = record.get("rejected")
    statuses = {stage: None if rejected else read_status(store, run_id, stage) for stage in STAGES}
    duplicate_of = (statuses["ingest"] or {}).get("duplicate_of")
    skipped = bool(duplicate_of or rejected)
    stages = [_stage_view(s, statuses[s], skipped=skipped) for s in STAGES]
    ended = skipped or stages[-1]["state"] == "succeeded"
    failed = next((s for s in stages if s["state"] == "failed"), None)
    error = f"{failed['stage']}: {failed['error']}" if failed else None
    view: dict[str, Any] = {
        "run_id": run_id,
        "pipeline": record["pipeline"],
        "state": "failed"
        if rejected
        else _state(stages, ended=ended or stages[-1]["state"] == "succeeded"),
        "error": f"not started: {rejected}" if rejected else error,
        "created": record["created"],
        "source": record["source"]["key"],
        "options": record.get("options", {}),
        "stages": stages,
        "duplicate_of": duplicate_of,
    }
    view.update(_results(statuses))
    train = statuses["train"] or {}
    if train.get("state") == "running" and train.get("trials_planned"):
        view["search"] = search_progress(store, run_id)
    elif train.get("state") == "succeeded":
        view["search"] = {
            "trials_done": train.get("trials"),
            "trials_planned": train.get("trials"),
            "budget_seconds": train.get("budget_seconds"),
            "stopped": train.get("stopped_trials", 0),
            "skipped": train.get("skipped_trials", 0),
            "until_budget": train.get("until_budget", False),
            "fit_seconds": train.get("fit_seconds"),
        }
    if duplicate_of:
        earlier = read_status(store, duplicate_of, "deploy") or {}
        view.update(model_version=earlier.get("version"), promoted=False)
    return view


def _results(statuses: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """Headline results picked from the stages' statuses."""
    ingest = statuses.get("ingest") or {}
    train = statuses.get("train") or {}
    evaluation = statuses.get("evaluate") or {}
    deploy = statuses.get("deploy") or {}
    return {
        "dataset_sha256": ingest.get("sha256"),
        "task": ingest.get("task"),
        "target": ingest.get("target"),
        "target_guessed": ingest.get("target_guessed"),
        "task_guessed": ingest.get("task_guessed"),
        "warnings": ingest.get("warnings") or [],  # the data checks' (services/ingest/validation)
        "best": train.get("best"),
        "metric": train.get("metric"),
        "trials": train.get("trials") or train.get("trials_planned"),
        "top_trials": train.get("top_trials"),
        "selection": train.get("selection"),
        "metrics": evaluation.get("metrics"),
        "champion_metrics": evaluation.get("champion_metrics"),
        "champion_version": evaluation.get("champion_version"),
        "gate": evaluation.get("gate"),
        "model_version": deploy.get("version"),
        "promoted": deploy.get("promoted"),
    }


def list_run_ids(store: Store) -> list[str]:
    """Every run id, oldest first (ULIDs sort by time)."""
    return sorted(store.children(RUNS))


def list_runs(store: Store, *, pipeline: str | None = None) -> list[dict[str, Any]]:
    """Every run, oldest first, optionally of one pipeline."""
    views = []
    for run_id in list_run_ids(store):
        try:
            view = describe_run(store, run_id)
        except NotFound:
            continue  # a run being created right now
        if pipeline is None or view["pipeline"] == pipeline:
            views.append(view)
    return views


def is_terminal(view: dict[str, Any]) -> bool:
    """Whether the run has ended."""
    return view["state"] in TERMINAL
