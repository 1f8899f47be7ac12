"""ingest.run: read the dropped file, check it, write the table, its profile and the spec."""

from __future__ import annotations

import hashlib
from typing import Any

from celery import Celery

from services.ingest.ingestion import infer_task, profile_table, resolve_target, validate_table
from services.ingest.reading import read_table
from shared.errors import DataError, NotFound
from shared.spec import parse_spec, resolve_spec
from shared.stage import StageContext, create_stage_worker


def ingest(ctx: StageContext) -> dict[str, Any]:
    """Turn the dropped file into a checked Parquet table with a schema, profile and spec."""
    source = ctx.run["source"]["key"]
    data = _download(ctx, source)
    spec = parse_spec(ctx.run.get("spec"))
    frame = read_table(data, filename=source, max_bytes=ctx.settings.max_upload_bytes)
    target = resolve_target(frame, spec.target)
    task = spec.task or infer_task(frame[target])
    frame = validate_table(frame, target=target, task=task, min_rows=ctx.settings.min_rows)
    resolved = resolve_spec(spec, target=target, task=task)
    ctx.store.put_frame(ctx.key("data.parquet"), frame)
    ctx.store.put_json(ctx.key("profile.json"), profile_table(frame))
    ctx.store.put_json(ctx.key("spec.json"), resolved.model_dump())
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "rows": len(frame),
        "columns": len(frame.columns),
        "target": target,
        "task": task,
        "outputs": ["data.parquet", "profile.json", "spec.json"],
    }


def _download(ctx: StageContext, source: str) -> bytes:
    try:
        size = ctx.store.head(source).size
    except NotFound as exc:
        raise DataError(
            f"the dropped file {source} is no longer in the bucket; drop it again"
        ) from exc
    limit = ctx.settings.max_upload_bytes
    if size > limit:
        raise DataError(
            f"file is {size} bytes, over the limit of {limit} bytes; split it or raise "
            "CAUCE_MAX_UPLOAD_BYTES",
            field="file",
        )
    return ctx.store.get_bytes(source)


def quarantine(ctx: StageContext, error: DataError) -> None:
    """Keep a copy of a rejected file, with the reason, under `quarantine/<pipeline>/<run_id>/`."""
    source = ctx.run["source"]["key"]
    prefix = f"quarantine/{ctx.pipeline}/{ctx.run_id}/"
    try:
        ctx.store.copy(source, prefix + source.rsplit("/", 1)[-1])
    except NotFound:
        ctx.log.warning("nothing to quarantine: %s is gone", source)
    ctx.store.put_json(
        prefix + "reason.json",
        {"source": source, "error": str(error), "field": error.field, "run_id": ctx.run_id},
    )


def create_worker() -> Celery:
    """The ingest worker's Celery app with its task registered."""
    return create_stage_worker("ingest", ingest, on_failure=quarantine)
