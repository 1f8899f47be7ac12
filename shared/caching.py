"""Step caching: a stage whose inputs, spec part and code match an earlier success reuses it."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from shared.errors import NotFound
from shared.layout import cache_entry_key, stage_key
from shared.storage import Store

ROOT = Path(__file__).resolve().parent.parent
# Fields of a status that describe one execution, not the stage's result.
EXECUTION_FIELDS = (
    "stage",
    "run_id",
    "state",
    "started",
    "finished",
    "seconds",
    "attempts",
    "cache_key",
    "cached_from",
    "error",
    "field",
)


@cache
def code_version(stage: str) -> str:
    """A hash of the code a stage runs: its service package and the shared library."""
    digest = hashlib.sha256()
    for folder in (ROOT / "services" / stage, ROOT / "shared"):
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(stage: str, inputs: dict[str, Any]) -> str:
    """The key of a stage execution: its name, its code version and everything it reads."""
    blob = json.dumps(
        {"stage": stage, "code": code_version(stage), "inputs": inputs}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def lookup(store: Store, stage: str, key: str) -> dict[str, Any] | None:
    """The cache entry for `key` if every artifact it names still exists; else None."""
    try:
        entry = dict(store.get_json(cache_entry_key(stage, key)))
    except NotFound:
        return None
    source = entry["run_id"]
    for name in entry["result"].get("outputs", []):
        if not store.exists(stage_key(source, stage, name)):
            return None  # deleted artifacts are never trusted: recompute
    return entry


def restore(store: Store, entry: dict[str, Any], *, stage: str, run_id: str) -> bool:
    """Copy a cached stage's artifacts into this run; False if one vanished meanwhile."""
    try:
        for name in entry["result"].get("outputs", []):
            store.copy(stage_key(entry["run_id"], stage, name), stage_key(run_id, stage, name))
    except NotFound:
        return False
    return True


def remember(store: Store, stage: str, key: str, *, run_id: str, status: dict[str, Any]) -> None:
    """Record a successful stage execution under its key."""
    result = {k: v for k, v in status.items() if k not in EXECUTION_FIELDS}
    store.put_json(cache_entry_key(stage, key), {"run_id": run_id, "result": result})
