"""What the pages show, read from the bucket: one run in full, a pipeline's models, pipelines."""

from __future__ import annotations

from typing import Any

from shared.errors import DataError, NotFound
from shared.layout import INCOMING, PIPELINES, aliases_prefix, stage_key
from shared.registry import alias_history, list_pipelines, list_versions, serving_runtime
from shared.runs import describe_run, read_run, read_status
from shared.storage import Store, check_name


def _optional_json(store: Store, key: str) -> Any:
    try:
        return store.get_json(key)
    except NotFound:
        return None


def run_detail(store: Store, run_id: str) -> dict[str, Any]:
    """The run view plus its input, profile, resolved spec, trials and evaluation report."""
    view = describe_run(store, check_name(run_id, what="run"))
    record = read_run(store, run_id)
    ingest = read_status(store, run_id, "ingest") or {}
    failed = next((s for s in view["stages"] if s["state"] == "failed"), None)
    failed_status = read_status(store, run_id, failed["stage"]) if failed else None
    return {
        **view,
        "input": {
            **record["source"],
            "sha256": ingest.get("sha256"),
            "rows": ingest.get("rows"),
            "columns": ingest.get("columns"),
        },
        "error_field": (failed_status or {}).get("field"),
        "spec_text": record.get("spec"),
        "profile": _optional_json(store, stage_key(run_id, "ingest", "profile.json")),
        "checks": _optional_json(store, stage_key(run_id, "ingest", "validation.json")),
        "spec": _optional_json(store, stage_key(run_id, "ingest", "spec.json")),
        "trials": _optional_json(store, stage_key(run_id, "train", "trials.json")),
        "report": _optional_json(store, stage_key(run_id, "evaluate", "report.json")),
    }


def aliases(store: Store, pipeline: str) -> dict[str, dict[str, Any]]:
    """Every alias of the pipeline (production, ...) and the pointer it holds."""
    prefix = aliases_prefix(pipeline)
    found = {}
    for item in store.list_objects(prefix):
        name = item.key[len(prefix) :]
        if "/" not in name and name.endswith(".json"):
            found[name[: -len(".json")]] = dict(store.get_json(item.key))
    return found


def model_overview(store: Store, pipeline: str) -> dict[str, Any]:
    """A pipeline's versions (newest first) with their aliases, and each alias's history."""
    pointers = aliases(store, check_name(pipeline))
    versions = list_versions(store, pipeline)
    if not versions:
        raise NotFound(f"pipeline {pipeline!r} has no registered model versions")
    for version in versions:
        version.update(serving_runtime(version))
        version["aliases"] = sorted(
            name for name, pointer in pointers.items() if pointer["version"] == version["version"]
        )
    return {
        "pipeline": pipeline,
        "versions": versions[::-1],
        "aliases": pointers,
        "history": {name: alias_history(store, pipeline, name)[::-1] for name in pointers},
    }


def known_pipelines(store: Store) -> list[str]:
    """Pipelines with a spec, a drop or a model: the choices when starting a run."""
    names = set(list_pipelines(store)) | set(store.children(INCOMING))
    for item in store.list_objects(PIPELINES):
        name = item.key[len(PIPELINES) :]
        if name.endswith(".yaml") and "/" not in name:
            names.add(name[: -len(".yaml")])
    return sorted(name for name in names if _valid(name))  # incoming/ may hold any folder


def _valid(name: str) -> bool:
    try:
        check_name(name)
    except DataError:
        return False
    return True
