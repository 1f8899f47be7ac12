"""ingest.run: read the dropped file, check it, write the table, its profile and the spec."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from celery import Celery

from services.ingest.ingestion import (
    Profiler,
    check_guessed_target,
    check_target,
    infer_task,
    resolve_target,
)
from services.ingest.reading import Part, check_disk, normalise, stream_table
from services.ingest.validation import check_drop
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
    """Turn the dropped file (or files) into a checked Parquet table with a profile and spec.

    The input is streamed to a temporary directory and read block by block, so memory holds a
    block, the profile's sketches and the target column, however large the file.
    """
    with tempfile.TemporaryDirectory(prefix="cauce-ingest-") as tmp:
        return _ingest(ctx, Path(tmp))


def _ingest(ctx: StageContext, tmp: Path) -> Ingested:
    parts, sha256, size = _download(ctx, tmp)
    earlier = claim_dataset(ctx, sha256)
    if earlier is not None:
        ctx.log.info("duplicate of run %s: not training again", earlier)
        ctx.end_run()
        return Ingested(sha256=sha256, bytes=size, duplicate_of=earlier)
    spec = parse_spec(ctx.run.get("spec"))
    profilers: list[Profiler] = []

    def new_profiler() -> Profiler:
        profilers.append(Profiler())
        return profilers[-1]

    raw = tmp / "raw.parquet"
    streamed = stream_table(
        parts,
        raw,
        max_bytes=ctx.settings.max_upload_bytes,
        max_cells=ctx.settings.max_table_cells,
        reserve_bytes=ctx.settings.disk_reserve_bytes,
        on_batch=new_profiler,
    )
    profile = profilers[-1].result()
    target = resolve_target(pd.DataFrame(columns=streamed.columns), spec.target)
    y = normalise(pq.read_table(raw, columns=[target]).to_pandas())[target]
    task = spec.task or infer_task(y)
    if spec.target is None:
        check_guessed_target(y, task=task)
    empty = [name for name, stats in profile["columns"].items() if stats["count"] == 0]
    labels, drop = check_target(
        y, columns=streamed.columns, empty=empty, task=task, min_rows=ctx.settings.min_rows
    )
    resolved = resolve_spec(spec, target=target, task=task)
    data = raw
    if drop or len(labels) < len(y) or labels.dtype != y.dtype:
        data = tmp / "data.parquet"  # a second pass, only when rows or columns must go
        profile = _rewrite(raw, data, labels=labels, drop=drop, target=target)
    # Checked on every run against the production model of the moment: ingest is never cached.
    checks = check_drop(
        ctx.store,
        ctx.pipeline,
        data=data,
        profile=profile,
        target=target,
        rules=spec.validation,
        empty=drop,
    )
    ctx.store.put_json(ctx.key("validation.json"), checks)
    if checks["failures"]:
        raise DataError(". Also, ".join(checks["failures"]), field="validation")
    for warning in checks["warnings"]:
        ctx.log.warning("data check: %s", warning)
    ctx.store.upload(data, ctx.key("data.parquet"))
    ctx.store.put_json(ctx.key("profile.json"), profile)
    ctx.store.put_json(ctx.key("spec.json"), resolved.model_dump())
    return Ingested(
        sha256=sha256,
        bytes=size,
        rows=len(labels),
        columns=len(streamed.columns) - len(drop),
        target=target,
        task=task,
        target_guessed=spec.target is None,
        task_guessed=spec.task is None,
        warnings=checks["warnings"],
        outputs=["data.parquet", "profile.json", "spec.json", "validation.json"],
        # Downstream cache keys chain from this one (ingest itself always runs: it is cheap,
        # it must read the file to recognise duplicates, and its data checks compare with
        # whichever model is in production). The checks' rules change no later stage's output.
        cache_key=cache_key(
            "ingest",
            {
                "sha256": sha256,
                "spec": resolved.model_dump(exclude={"validation"}),
                "min_rows": ctx.settings.min_rows,
            },
        ),
    )


def _rewrite(
    source: Path, out: Path, *, labels: pd.Series, drop: list[str], target: str
) -> dict[str, Any]:
    """Copy the table without unlabelled rows and empty columns, with the target as checked
    (labels' index is each kept row's position); return the profile of what was written."""
    profiler = Profiler()
    positions = labels.index.to_numpy()
    values = labels.reset_index(drop=True)
    parquet = pq.ParquetFile(source, pre_buffer=False)  # one row group at a time
    names = [name for name in parquet.schema_arrow.names if name not in drop]
    writer: pq.ParquetWriter | None = None
    start = done = 0
    try:
        for batch in parquet.iter_batches(columns=names, use_pandas_metadata=False):
            end = start + batch.num_rows
            low, high = np.searchsorted(positions, [start, end])
            kept = batch.take(pa.array(positions[low:high] - start))
            column = pa.Array.from_pandas(values.iloc[done : done + len(kept)])
            kept = kept.set_column(names.index(target), target, column)
            if writer is None:
                writer = pq.ParquetWriter(out, kept.schema)
            if kept.num_rows:
                writer.write_batch(kept)
                profiler(kept)
            start, done = end, done + len(kept)
    finally:
        if writer is not None:
            writer.close()
    return profiler.result()


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


def _download(ctx: StageContext, tmp: Path) -> tuple[list[Part], str, int]:
    """Exactly the bytes that started the run, on local disk: its own copy (or copies, for a
    dataset of several parts), taken when the drop was seen (or, for a run recorded before runs
    kept one, the dropped object if its ETag has not changed). Returns the parts, the dataset's
    sha256 (of the parts' digests, one a line, when there are several) and its size."""
    source = ctx.run["source"]
    inputs = _inputs(ctx)
    sizes = []
    for key, _ in inputs:
        try:
            sizes.append(ctx.store.head(key).size if key else None)
        except NotFound:
            sizes.append(None)
        if sizes[-1] is None and len(inputs) > 1:
            raise DataError(
                f"part {visible(str(key))} of the dropped dataset {visible(source['key'])} is no "
                "longer in the bucket; drop the dataset again",
                field="file",
            )
    if sizes[0] is None and "input" in source:
        raise DataError(
            f"the dropped file {visible(source['key'])} was replaced or removed before this run "
            "could keep a copy; a file put there since has a run of its own",
            field="file",
        )
    if sizes[0] is None:
        raise DataError(
            f"the dropped file {visible(source['key'])} is no longer in the bucket; drop it again"
        )
    size = sum(s or 0 for s in sizes)
    limit = ctx.settings.max_upload_bytes
    if limit is not None and size > limit:
        raise DataError(
            f"file is {size} bytes, over the limit of {limit} bytes; split it or raise "
            "CAUCE_MAX_UPLOAD_BYTES",
            field="file",
        )
    reserve = ctx.settings.disk_reserve_bytes
    check_disk(size, filename=source["key"], directory=tmp, reserve_bytes=reserve)
    parts, digests = [], []
    for index, (key, etag) in enumerate(inputs):
        assert key is not None
        path = tmp / f"part-{index:05d}"
        try:
            digests.append(ctx.store.download_hashed(key, path, if_match=etag))
        except Conflict as exc:
            raise DataError(
                f"the dropped file {visible(source['key'])} was replaced after this run started; "
                "the new file has a run of its own",
                field="file",
            ) from exc
        parts.append(Part(path, key if len(inputs) > 1 else source["key"]))
    if len(digests) == 1:
        return parts, digests[0], size
    return parts, hashlib.sha256("\n".join(digests).encode()).hexdigest(), size


def _inputs(ctx: StageContext) -> list[tuple[str | None, str | None]]:
    """The keys this run reads its input from, in order, and the ETag each must have (None:
    any). A dataset of several parts lists them under "inputs"."""
    source = ctx.run["source"]
    if source.get("inputs"):
        return [(str(key), None) for key in source["inputs"]]
    return [_input(ctx)]


def _input(ctx: StageContext) -> tuple[str | None, str | None]:
    """The key a single-file run reads its input from, and the ETag it must have (None: any)."""
    source = ctx.run["source"]
    if "input" in source:
        return source["input"], None
    return source["key"], source.get("etag")


def quarantine(ctx: StageContext, error: DataError) -> None:
    """Keep a copy of a rejected file (every part of it), with the reason, under
    `quarantine/<pipeline>/<run_id>/`."""
    source = ctx.run["source"]["key"]
    kept = 0
    for key, etag in _inputs(ctx):
        name = (key if ctx.run["source"].get("inputs") and key else source).rsplit("/", 1)[-1]
        try:
            if key is not None:
                ctx.store.copy(key, quarantine_key(ctx.pipeline, ctx.run_id, name), if_match=etag)
                kept += 1
        except (NotFound, Conflict):
            pass
    if not kept:
        ctx.log.warning("nothing to quarantine: the input of %s is gone", visible(source))
    ctx.store.put_json(
        quarantine_key(ctx.pipeline, ctx.run_id, "reason.json"),
        {"source": source, "error": str(error), "field": error.field, "run_id": ctx.run_id},
    )


def create_worker() -> Celery:
    """The ingest worker's Celery app with its task registered."""
    app, _ = create_stage_worker("ingest", ingest, on_failure=quarantine)
    return app
