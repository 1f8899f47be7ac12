"""The model registry in the bucket: immutable numbered versions, aliases moved by CAS."""

from __future__ import annotations

import json
from typing import Any

from shared.errors import Conflict, NotFound
from shared.ids import new_run_id, now
from shared.layout import (
    MODELS,
    alias_key,
    history_key,
    history_prefix,
    version_key,
    versions_prefix,
)
from shared.signing import check_file, manifest, sign, verify
from shared.storage import Store

MODEL_FILE = "model.skops"


def list_pipelines(store: Store) -> list[str]:
    """Every pipeline that has at least one registered version."""
    return sorted(store.children(MODELS))


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


def serving_runtime(record: dict[str, Any]) -> dict[str, Any]:
    """Which runtime serves a version (onnx or skops) and, for skops, why: deploy's ONNX check
    (its largest difference, or the converter's error) as one sentence."""
    if record.get("runtime") in ("onnx", "skops"):
        return {"runtime": record["runtime"], "runtime_reason": record.get("runtime_reason")}
    check = record.get("onnx")
    if not check:
        return {"runtime": "skops", "runtime_reason": "registered before deploy exported ONNX"}
    if check.get("file"):
        return {"runtime": "onnx", "runtime_reason": None}
    if check.get("reason"):
        return {"runtime": "skops", "runtime_reason": f"no ONNX export: {check['reason']}"}
    return {
        "runtime": "skops",
        "runtime_reason": (
            f"the ONNX export did not answer as scikit-learn on {check.get('rows')} test rows: "
            f"max_abs_diff {check.get('max_abs_diff', float('nan')):.4g} "
            f"(tolerance {check.get('tolerance', float('nan')):g} relative), "
            f"labels agree on {check.get('label_agreement', float('nan')):.2%}"
        ),
    }


def register_version(
    store: Store,
    pipeline: str,
    *,
    run_id: str,
    model: bytes,
    meta: dict[str, Any],
    signing_key: bytes,
    files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Register a new immutable, signed version, or return the one this run registered before.

    `files` are further artifacts stored beside the model (model.onnx); the signed manifest
    covers them too.
    """
    files = {MODEL_FILE: model, **(files or {})}
    for existing in list_versions(store, pipeline):
        if existing.get("run_id") == run_id:
            _write_files(store, pipeline, existing["version"], files)
            return existing
    while True:
        taken = [int(n) for n in store.children(versions_prefix(pipeline)) if n.isdigit()]
        number = max(taken, default=0) + 1
        content = manifest(pipeline=pipeline, version=number, run_id=run_id, files=files)
        record = {
            **meta,
            "pipeline": pipeline,
            "version": number,
            "run_id": run_id,
            "created": now(),
            "artifact": MODEL_FILE,
            "sha256": content["files"][MODEL_FILE],
            "manifest": content,
            "manifest_signature": sign(content, signing_key),
        }
        try:  # claiming version.json is the commit point: a racer takes the next number
            store.put_json(version_key(pipeline, number), record, if_none_match=True)
        except Conflict:
            continue
        _write_files(store, pipeline, number, files)
        return record


def _write_files(store: Store, pipeline: str, version: int, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        store.put_bytes(version_key(pipeline, version, name), data)


def version_record(store: Store, pipeline: str, version: int) -> dict[str, Any]:
    """A version's record (version.json), unverified: read_artifact checks its signature before
    any file of the version is used."""
    return dict(store.get_json(version_key(pipeline, version)))


def load_version(
    store: Store, pipeline: str, version: int, *, signing_key: bytes
) -> tuple[dict[str, Any], bytes]:
    """A version's record and model bytes, after its signed manifest and the file are checked."""
    record = version_record(store, pipeline, version)
    return record, read_artifact(store, record, record["artifact"], signing_key=signing_key)


def read_artifact(store: Store, record: dict[str, Any], name: str, *, signing_key: bytes) -> bytes:
    """One file of a version, refused unless the signature and the file's sha256 both check."""
    content = verify(record, signing_key)
    data = store.get_bytes(version_key(record["pipeline"], record["version"], name))
    return check_file(content, name, data)


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
        store.put_json(history_key(pipeline, alias, new_run_id()), pointer)
        return pointer


def alias_history(store: Store, pipeline: str, alias: str = "production") -> list[dict[str, Any]]:
    """Every move of the alias, oldest first."""
    prefix = history_prefix(pipeline, alias)
    return [dict(store.get_json(item.key)) for item in store.list_objects(prefix)]
