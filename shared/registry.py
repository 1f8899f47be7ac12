"""The model registry in the bucket: immutable numbered versions, aliases moved by CAS."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.errors import Conflict, DataError, NotFound
from shared.ids import new_run_id, now
from shared.storage import Store

MODEL_FILE = "model.skops"


def versions_prefix(pipeline: str) -> str:
    """The prefix under which a pipeline's versions live."""
    return f"models/{pipeline}/versions/"


def version_key(pipeline: str, version: int, name: str = "version.json") -> str:
    """The key of one file of one version."""
    return f"{versions_prefix(pipeline)}{version}/{name}"


def alias_key(pipeline: str, alias: str) -> str:
    """The key of an alias pointer."""
    return f"models/{pipeline}/aliases/{alias}.json"


def list_pipelines(store: Store) -> list[str]:
    """Every pipeline that has at least one registered version."""
    return sorted(store.children("models/"))


def list_versions(store: Store, pipeline: str) -> list[dict[str, Any]]:
    """A pipeline's versions, oldest first."""
    numbers = sorted(int(n) for n in store.children(versions_prefix(pipeline)) if n.isdigit())
    versions = []
    for number in numbers:
        try:
            versions.append(dict(store.get_json(version_key(pipeline, number))))
        except NotFound:
            continue
    return versions


def register_version(
    store: Store,
    pipeline: str,
    *,
    run_id: str,
    model: bytes,
    meta: dict[str, Any],
    files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Register a new immutable version, or return the one this run already registered.

    `files` are further artifacts stored beside the model (model.onnx); their sha256 is recorded.
    """
    files = files or {}
    for existing in list_versions(store, pipeline):
        if existing.get("run_id") == run_id:
            _write_artifact(store, pipeline, existing["version"], model, files)
            return existing
    while True:
        taken = [int(n) for n in store.children(versions_prefix(pipeline)) if n.isdigit()]
        number = max(taken, default=0) + 1
        record = {
            **meta,
            "pipeline": pipeline,
            "version": number,
            "run_id": run_id,
            "created": now(),
            "artifact": MODEL_FILE,
            "sha256": hashlib.sha256(model).hexdigest(),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        }
        try:  # claiming version.json is the commit point: a racer takes the next number
            store.put_json(version_key(pipeline, number), record, if_none_match=True)
        except Conflict:
            continue
        _write_artifact(store, pipeline, number, model, files)
        return record


def _write_artifact(
    store: Store, pipeline: str, version: int, model: bytes, files: dict[str, bytes]
) -> None:
    for name, data in files.items():
        store.put_bytes(version_key(pipeline, version, name), data)
    store.put_bytes(version_key(pipeline, version, MODEL_FILE), model)


def load_version(store: Store, pipeline: str, version: int) -> tuple[dict[str, Any], bytes]:
    """A version's record and model bytes, checked against the recorded sha256."""
    record = dict(store.get_json(version_key(pipeline, version)))
    model = store.get_bytes(version_key(pipeline, version, record["artifact"]))
    if hashlib.sha256(model).hexdigest() != record["sha256"]:
        raise DataError(
            f"model {pipeline} v{version} does not match its recorded sha256; refusing to load it"
        )
    return record, model


def load_file(store: Store, record: dict[str, Any], name: str) -> bytes:
    """A further artifact of a loaded version (model.onnx), checked against its recorded sha256."""
    expected = (record.get("files") or {}).get(name)
    if expected is None:
        raise NotFound(f"model {record['pipeline']} v{record['version']} has no {name}")
    data = store.get_bytes(version_key(record["pipeline"], int(record["version"]), name))
    if hashlib.sha256(data).hexdigest() != expected:
        raise DataError(
            f"{name} of model {record['pipeline']} v{record['version']} does not match its "
            "recorded sha256; refusing to load it"
        )
    return data


def get_alias(store: Store, pipeline: str, alias: str = "production") -> dict[str, Any] | None:
    """The alias pointer, or None when the alias is not set."""
    try:
        return dict(store.get_json(alias_key(pipeline, alias)))
    except NotFound:
        return None


def move_alias(
    store: Store,
    pipeline: str,
    version: int,
    *,
    alias: str = "production",
    run_id: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Point the alias at `version` with a conditional write, recording the move in history."""
    while True:
        try:
            body, etag = store.get_with_etag(alias_key(pipeline, alias))
            previous: int | None = int(json.loads(body)["version"])
            condition: dict[str, Any] = {"if_match": etag}
        except NotFound:
            previous, condition = None, {"if_none_match": True}
        pointer = {
            "pipeline": pipeline,
            "alias": alias,
            "version": version,
            "previous": previous,
            "moved": now(),
            "run_id": run_id,
            "reason": reason,
        }
        try:
            store.put_json(alias_key(pipeline, alias), pointer, **condition)
        except Conflict:
            continue  # someone else moved it: re-read and move again on top of theirs
        store.put_json(f"models/{pipeline}/aliases/history/{alias}/{new_run_id()}.json", pointer)
        return pointer


def alias_history(store: Store, pipeline: str, alias: str = "production") -> list[dict[str, Any]]:
    """Every move of the alias, oldest first."""
    prefix = f"models/{pipeline}/aliases/history/{alias}/"
    return [dict(store.get_json(item.key)) for item in store.list_objects(prefix)]
