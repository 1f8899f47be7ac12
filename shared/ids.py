"""Ids and timestamps: run ids are ULIDs so that they sort by time."""

from __future__ import annotations

from datetime import UTC, datetime

from ulid import ULID


def new_run_id() -> str:
    """A new run id that sorts after every earlier one."""
    return str(ULID())


def now() -> str:
    """The current UTC time as ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def seconds_between(start: str, end: str) -> float:
    """Seconds from one ISO timestamp to another."""
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
