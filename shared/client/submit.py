"""Submitting a file or a multi-part dataset: upload it to the drop zone and find the run the
watcher starts for it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from ulid import ULID

from shared.errors import DataError, NotFound
from shared.layout import (
    MANIFEST_MARKER,
    RUNS,
    batch_key,
    dataset_prefix,
    drop_key,
    job_key,
    jobs_prefix,
    part_key,
    spec_key,
)
from shared.runs import describe_run, is_terminal, read_run
from shared.spec import load_yaml
from shared.storage import Store, check_name
from shared.wake import wake_watcher


def submit_file(
    store: Store,
    path: Path,
    *,
    pipeline: str,
    target: str | None = None,
    cache: bool = True,
    force: bool = False,
    broker_url: str | None = None,
) -> dict[str, Any]:
    """Upload `path` to `incoming/<pipeline>/`; with `target`, set it in the spec first. With
    `broker_url`, wake the watcher rather than wait for its next poll (shared/wake.py)."""
    check_name(pipeline)
    check_name(path.name, what="file")
    store.ensure_bucket()
    if target is not None:
        _set_target(store, pipeline, target)
    key, data = drop_key(pipeline, path.name), path.read_bytes()
    return _drop(store, key, data, cache=cache, force=force, broker_url=broker_url)


def dataset_files(path: Path) -> list[Path]:
    """The parts of a folder submitted as one dataset: its files in name order, leaving out
    hidden ones and what Spark and Hadoop write beside parts (names starting with `.` or `_`)."""
    return sorted(
        (p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))),
        key=lambda p: p.name,
    )


def submit_dataset(
    store: Store,
    paths: list[Path],
    *,
    pipeline: str,
    dataset: str,
    target: str | None = None,
    cache: bool = True,
    force: bool = False,
    broker_url: str | None = None,
) -> dict[str, Any]:
    """Upload `paths` as the parts of one dataset to `incoming/<pipeline>/<dataset>/`, then a
    manifest naming them in order (last: it starts the run, and only of exactly these parts)."""
    check_name(pipeline)
    check_name(dataset, what="dataset")
    if not paths:
        raise DataError(f"dataset {dataset!r} has no parts to upload", field="dataset")
    names = [check_name(path.name, what="file") for path in paths]
    if len(set(names)) < len(names):
        raise DataError("two parts have the same file name; rename one", field="file")
    store.ensure_bucket()
    if target is not None:
        _set_target(store, pipeline, target)
    folder = dataset_prefix(pipeline, dataset)
    for path in paths:
        store.upload(path, part_key(folder, path.name))  # streamed: parts may be large
    listed = [{"name": path.name, "size": path.stat().st_size} for path in paths]
    text = json.dumps({"parts": listed}, indent=1).encode()
    key = part_key(folder, MANIFEST_MARKER)
    return _drop(
        store,
        key,
        text,
        cache=cache,
        force=force,
        content_type="application/json",
        broker_url=broker_url,
    )


def _drop(
    store: Store,
    key: str,
    data: bytes,
    *,
    cache: bool,
    force: bool,
    content_type: str = "application/octet-stream",
    broker_url: str | None = None,
) -> dict[str, Any]:
    """Put the object that starts a run, with the run's options as metadata, and wake the
    watcher when `broker_url` is given; what finds its run."""
    started = str(ULID.from_timestamp(time.time() - 5))  # runs created from now on sort after
    options = {"cauce-cache": str(cache).lower(), "cauce-force": str(force).lower()}
    store.put_bytes(key, data, content_type=content_type, metadata=options)
    uploaded = store.head(key)  # same key and bytes as an earlier drop: the time tells them apart
    if broker_url:
        wake_watcher(broker_url)
    return {"key": key, "etag": uploaded.etag, "modified": uploaded.modified, "after": started}


def _set_target(store: Store, pipeline: str, target: str) -> None:
    key = spec_key(pipeline)
    try:
        spec = load_yaml(store.get_bytes(key).decode("utf-8", "replace")) or {}
    except NotFound:
        spec = {}
    if not isinstance(spec, dict):
        spec = {}
    spec["target"] = target
    store.put_bytes(
        key, yaml.safe_dump(spec, sort_keys=False).encode(), content_type="application/yaml"
    )


def find_run(store: Store, *, key: str, etag: str, modified: str, after: str) -> str | None:
    """The id of the run the watcher started for this upload, once it exists."""
    for run_id in sorted(store.children(RUNS), reverse=True):
        if run_id < after:
            break
        try:
            source = read_run(store, run_id)["source"]
        except NotFound:
            continue
        if (source["key"], source["etag"]) == (key, etag) and _same_second(
            source.get("modified"), modified
        ):
            return run_id
    return None


def await_run_id(store: Store, upload: dict[str, Any], *, timeout: float) -> str | None:
    """The id of the run started for an upload (submit_file's answer), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_id = find_run(
            store,
            key=upload["key"],
            etag=upload["etag"],
            modified=upload["modified"],
            after=upload["after"],
        )
        if run_id:
            return run_id
        time.sleep(0.3)
    return None


def wait_for_run(
    store: Store,
    run_id: str,
    *,
    timeout: float,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll the run until it ends or `timeout` passes; call `on_change` whenever it moves."""
    deadline = time.monotonic() + timeout
    last: Any = None
    view = describe_run(store, run_id)
    while True:
        marker = [(s["stage"], s["state"]) for s in view["stages"]]
        marker.append(("trials", str((view.get("search") or {}).get("trials_done"))))
        if marker != last and on_change is not None:
            on_change(view)
        last = marker
        if is_terminal(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.3)
        view = describe_run(store, run_id)


def _same_second(a: str | None, b: str) -> bool:
    """Whether two timestamps (from a listing and from a HEAD) name the same second."""
    if not a:
        return False
    return abs(datetime.fromisoformat(a).timestamp() - datetime.fromisoformat(b).timestamp()) < 1


def submit_batch(store: Store, path: Path, *, pipeline: str) -> dict[str, Any]:
    """Upload `path` to `batch/<pipeline>/`, where the watcher queues a batch prediction job."""
    check_name(pipeline)
    check_name(path.name, what="file")
    store.ensure_bucket()
    key = batch_key(pipeline, path.name)
    started = str(ULID.from_timestamp(time.time() - 5))  # jobs queued from now on sort after
    store.put_bytes(key, path.read_bytes())
    uploaded = store.head(key)  # the job is found by this ETag and time, never by the name alone
    return {
        "key": key,
        "pipeline": pipeline,
        "etag": uploaded.etag,
        "modified": uploaded.modified,
        "after": started,
    }


def find_batch_job(store: Store, upload: dict[str, Any]) -> str | None:
    """The id of the batch job the watcher queued for this upload (submit_batch's answer)."""
    pipeline = upload["pipeline"]
    for job_id in sorted(store.children(jobs_prefix(pipeline)), reverse=True):
        if job_id < upload["after"]:
            break
        try:
            job = store.get_json(job_key(pipeline, job_id))
        except NotFound:
            continue
        if (job["source"], job.get("etag")) == (upload["key"], upload["etag"]) and _same_second(
            job.get("modified"), upload["modified"]
        ):
            return job_id
    return None


def wait_for_batch(store: Store, pipeline: str, job_id: str, *, timeout: float) -> dict[str, Any]:
    """Poll a batch job's status until it succeeds or fails, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = dict(store.get_json(job_key(pipeline, job_id)))
        if status["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.3)
