"""Console test helpers: runs written straight into the bucket, as the stages leave them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ulid import ULID

from shared.pipeline import STAGES
from shared.runs import create_run, write_status
from shared.storage import Store

# A run's stage states by the run state the console should show.
SHAPES: dict[str, list[str]] = {
    "queued": [],
    "running": ["succeeded", "running"],
    "succeeded": ["succeeded"] * len(STAGES),
    "failed": ["failed"],
}


def run_id_at(when: datetime) -> str:
    """A run id made at `when`, as the watcher would have made it then."""
    return str(ULID.from_datetime(when))


def seed_run(
    store: Store,
    *,
    when: datetime,
    pipeline: str = "churn",
    state: str = "succeeded",
    error: str = "the target column 'churned' is missing",
    field: str | None = "target",
) -> str:
    """Write `run.json` and the stages' statuses of one run that is in `state`."""
    run_id = run_id_at(when)
    source = {"key": f"incoming/{pipeline}/data.csv", "etag": '"0"', "size": 1234, "modified": ""}
    create_run(store, run_id=run_id, pipeline=pipeline, source=source, spec_text=None)
    for offset, (stage, stage_state) in enumerate(zip(STAGES, SHAPES[state], strict=False)):
        started = (when + timedelta(seconds=offset)).isoformat(timespec="milliseconds")
        fields: dict[str, Any] = {"state": stage_state, "started": started, "attempts": 1}
        if stage_state != "running":
            fields["finished"] = (when + timedelta(seconds=offset + 0.5)).isoformat(
                timespec="milliseconds"
            )
        if stage_state == "failed":
            fields.update(error=error, field=field)
        write_status(store, run_id, stage, **fields)
    return run_id


def ago(**delta: float) -> datetime:
    """A moment before now."""
    return datetime.now(UTC) - timedelta(**delta)
