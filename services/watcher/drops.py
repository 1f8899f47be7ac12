"""Drops: which pipeline a key under `incoming/` belongs to, and what its run records of it."""

from __future__ import annotations

import logging
from typing import Any

from shared.errors import DataError
from shared.layout import INCOMING, MARKERS
from shared.storage import ObjectInfo, check_name
from shared.text import has_hidden, visible

log = logging.getLogger(__name__)


def route(key: str, prefix: str = INCOMING) -> str | None:
    """The pipeline a dropped key belongs to; None for a key that is not a drop (a folder marker
    or a hidden file); DataError, saying what to do, for a file no pipeline can take."""
    parts = key[len(prefix) :].split("/")
    if not parts[-1] or parts[-1].startswith("."):
        return None
    if len(parts) < 2:
        raise DataError(
            f"{visible(key)} is not in a pipeline's folder: move it to "
            f"{visible(prefix)}<pipeline>/{visible(parts[-1])}",
            field="pipeline",
        )
    try:
        pipeline = check_name(parts[0])
    except DataError as exc:
        message = f"{visible(key)}: {exc}; move the file to a pipeline's folder"
        raise DataError(message, field="pipeline") from None
    if prefix == INCOMING and len(parts) == 2 and parts[1] in MARKERS:
        raise DataError(
            f"{visible(key)} marks a multi-part dataset, whose parts and marker go in a folder "
            f"of their own: {visible(prefix)}{pipeline}/<dataset>/",
            field="file",
        )
    if has_hidden(key):
        raise DataError(
            f"the name of {visible(key)} holds control or direction-changing characters; "
            "rename the file without them",
            field="file",
        )
    return pipeline


def folder_of(key: str) -> str | None:
    """The pipeline folder a key is in, if it is in one with a valid name."""
    parts = key[len(INCOMING) :].split("/")
    try:
        return check_name(parts[0]) if len(parts) > 1 else None
    except DataError:
        return None


def pipeline_of(key: str, prefix: str = INCOMING) -> str | None:
    """The pipeline a dropped key belongs to, or None for keys that are not drops."""
    try:
        return route(key, prefix)
    except DataError as exc:
        log.warning("ignoring %s: %s", visible(key), exc)
        return None


def source_of(item: ObjectInfo) -> dict[str, Any]:
    """What run.json records of the drop that started the run."""
    return {"key": item.key, "etag": item.etag, "size": item.size, "modified": item.modified}


def run_options(metadata: dict[str, str]) -> dict[str, bool]:
    """Options a drop carries as object metadata (`cauce submit --no-cache/--force` sets them)."""
    return {
        "cache": metadata.get("cauce-cache", "true").lower() != "false",
        "force": metadata.get("cauce-force", "false").lower() == "true",
    }
