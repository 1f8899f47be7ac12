"""ingest.run: read the dropped file, check it, write the table, its profile and the spec."""

from __future__ import annotations

import hashlib
import json

from celery import Celery

from services.ingest.ingestion import (
    check_guessed_target,
    infer_task,
    profile_table,
    resolve_target,
    validate_table,
)
from services.ingest.reading import read_table
from shared.caching import cache_key
from shared.context import StageContext
from shared.errors import Conflict, DataError, NotFound
from shared.layout import dataset_key, quarantine_key
from shared.results import Ingested
from shared.runs import describe_run
from shared.spec import parse_spec, resolve_spec
from shared.stage import create_stage_worker
from shared.text import visible


def ingest(ctx: StageContext) -> Ingested:
    """Turn the dropped file into a checked Parquet table with a schema, profile and spec."""
    source = ctx.run["source"]["key"]
    data = _download(ctx)
    sha256 = hashlib.sha256(data).hexdigest()
    earlier = claim_dataset(ctx, sha256)
    if earlier is not None:
        ctx.log.info("duplicate of run %s: not training again", earlier)
        ctx.end_run()
        return Ingested(sha256=sha256, bytes=len(data), duplicate_of=earlier)
    spec = parse_spec(ctx.run.get("spec"))
    frame = read_table(
        data,
        filename=source,
        max_bytes=ctx.settings.max_upload_bytes,
        max_cells=ctx.settings.max_table_cells,
    )
    target = resolve_target(frame, spec.target)
    task = spec.task or infer_task(frame[target])
    if spec.target is None:
        check_guessed_target(frame[target], task=task)
    frame = validate_table(frame, target=target, task=task, min_rows=ctx.settings.min_rows)
    resolved = resolve_spec(spec, target=target, task=task)
    ctx.store.put_frame(ctx.key("data.parquet"), frame)
    ctx.store.put_json(ctx.key("profile.json"), profile_table(frame))
    ctx.store.put_json(ctx.key("spec.json"), resolved.model_dump())
    return Ingested(
        sha256=sha256,
        bytes=len(data),
        rows=len(frame),
        columns=len(frame.columns),
        target=target,
        task=task,
        target_guessed=spec.target is None,
        task_guessed=spec.task is None,
        outputs=["data.parquet", "profile.json", "spec.json"],
        # Downstream cache keys chain from this one (ingest itself always runs: it is cheap,
        # and it must read the file to recognise duplicates).
        cache_key=cache_key(
            "ingest",
            {"sha256": sha256, "spec": resolved.model_dump(), "min_rows": ctx.settings.min_rows},
        ),
    )


def claim_dataset(ctx: StageContext, sha256: str) -> str | None:
    """The earlier run this drop duplicates (same content, same spec), or None if it is new.

    The first run of a dataset claims `datasets/<pipeline>/<id>.json`; a later drop of the same
    bytes finds the claim and points at that run, unless it was forced or the earlier run failed.
    """
    spec_text = ctx.run.get("spec") or ""
    dataset = hashlib.sha256(f"{sha256}\n{spec_text}".encode()).hexdigest()
    key = dataset_key(ctx.pipeline, dataset)
    claim = {"run_id": ctx.run_id, "sha256": sha256}
    if ctx.run.get("options", {}).get("force"):
        ctx.store.put_json(key, claim)
        return None
    try:
        ctx.store.put_json(key, claim, if_none_match=True)
        return None
    except Conflict:
        body, etag = ctx.store.get_with_etag(key)
    earlier = str(json.loads(body)["run_id"])
    if earlier == ctx.run_id:
        return None  # this run's own claim, seen again on a redelivery
    if describe_run(ctx.store, earlier)["state"] != "failed":
        return earlier
    try:  # the earlier run failed: this one takes the dataset over
        ctx.store.put_json(key, claim, if_match=etag)
    except Conflict:
        return claim_dataset(ctx, sha256)
    return None


def _download(ctx: StageContext) -> bytes:
    """Exactly the bytes that started the run: its own copy, taken when the drop was seen (or,
    for a run recorded before runs kept one, the dropped object if its ETag has not changed)."""
    source = ctx.run["source"]
    key, etag = _input(ctx)
    try:
        size = ctx.store.head(key).size if key else None
    except NotFound:
        size = None
    if size is None and "input" in source:
        raise DataError(
            f"the dropped file {visible(source['key'])} was replaced or removed before this run "
            "could keep a copy; a file put there since has a run of its own",
            field="file",
        )
    if size is None:
        raise DataError(
            f"the dropped file {visible(source['key'])} is no longer in the bucket; drop it again"
        )
    limit = ctx.settings.max_upload_bytes
    if size > limit:
        raise DataError(
            f"file is {size} bytes, over the limit of {limit} bytes; split it or raise "
            "CAUCE_MAX_UPLOAD_BYTES",
            field="file",
        )
    try:
        return ctx.store.get_bytes(str(key), if_match=etag)
    except Conflict as exc:
        raise DataError(
            f"the dropped file {visible(source['key'])} was replaced after this run started; "
            "the new file has a run of its own",
            field="file",
        ) from exc


def _input(ctx: StageContext) -> tuple[str | None, str | None]:
    """The key this run reads its input from, and the ETag it must have (None: any)."""
    source = ctx.run["source"]
    if "input" in source:
        return source["input"], None
    return source["key"], source.get("etag")


def quarantine(ctx: StageContext, error: DataError) -> None:
    """Keep a copy of a rejected file, with the reason, under `quarantine/<pipeline>/<run_id>/`."""
    source = ctx.run["source"]["key"]
    key, etag = _input(ctx)
    target = quarantine_key(ctx.pipeline, ctx.run_id, source.rsplit("/", 1)[-1])
    try:
        if key is not None:
            ctx.store.copy(key, target, if_match=etag)
    except (NotFound, Conflict):
        key = None
    if key is None:
        ctx.log.warning("nothing to quarantine: the input of %s is gone", visible(source))
    ctx.store.put_json(
        quarantine_key(ctx.pipeline, ctx.run_id, "reason.json"),
        {"source": source, "error": str(error), "field": error.field, "run_id": ctx.run_id},
    )


def create_worker() -> Celery:
    """The ingest worker's Celery app with its task registered."""
    app, _ = create_stage_worker("ingest", ingest, on_failure=quarantine)
    return app
