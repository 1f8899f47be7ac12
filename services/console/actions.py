"""What the console changes: a drop into `incoming/`, and a rollback of an alias."""

from __future__ import annotations

import time
from typing import Any

from ulid import ULID

from shared.alerts import model_rolled_back
from shared.client.listing import ids_between
from shared.errors import Conflict, DataError, NotFound
from shared.layout import drop_key, version_key
from shared.registry import get_alias, move_alias
from shared.runs import read_run
from shared.storage import Store, check_name
from shared.wake import announce_alias


def upload(store: Store, *, pipeline: str, filename: str, data: bytes) -> dict[str, Any]:
    """Put the file in `incoming/<pipeline>/`; the watcher starts the run."""
    check_name(pipeline)
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    check_name(name, what="file")
    if not data:
        raise DataError(f"{name} is empty", field="file")
    key = drop_key(pipeline, name)
    after = str(ULID.from_timestamp(time.time() - 5))  # runs created from now on sort after
    etag = store.put_bytes(key, data)
    return {"pipeline": pipeline, "key": key, "etag": etag, "after": after}


def roll_back(
    store: Store,
    pipeline: str,
    *,
    version: int,
    expected: int | None,
    alias: str = "production",
    reason: str = "",
    broker_url: str,
) -> dict[str, Any]:
    """Point the alias at an existing `version`, if it still points where the user saw it, and
    announce the move to the prediction services."""
    check_name(pipeline)
    check_name(alias, what="alias")
    if not store.exists(version_key(pipeline, version)):
        raise NotFound(f"pipeline {pipeline!r} has no version {version}")
    current = get_alias(store, pipeline, alias)
    now_at = current["version"] if current else None
    if now_at != expected:
        raise Conflict(
            f"{alias} of {pipeline} moved to v{now_at} since you looked (expected v{expected}); "
            "review the models page and try again"
        )
    note = reason.strip() or f"rolled back from v{now_at} to v{version} in the console"
    pointer = move_alias(store, pipeline, version, alias=alias, reason=note)
    announce_alias(broker_url, pointer)
    model_rolled_back(
        broker_url, pipeline=pipeline, alias=alias, version=version, previous=now_at, reason=note
    )
    return pointer


def upload_run(store: Store, *, key: str, etag: str, after: str) -> str | None:
    """The run the watcher started for an upload, looking only at runs made since `after`."""
    run_ids, _ = ids_between(store, check_name(after, what="after")[:10], None, limit=1000)
    for run_id in reversed(run_ids):
        try:
            source = read_run(store, run_id)["source"]
        except NotFound:
            continue  # being created right now
        if source["key"] == key and source["etag"] == etag:
            return run_id
    return None
