"""batch.run: score a file dropped under batch/<pipeline>/ into predictions/<pipeline>/<job>/."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from celery import Celery
from pydantic import ValidationError

from services.batch.scoring import BatchModel, score_file
from shared.artifacts import load_model
from shared.columns import CompiledSignature
from shared.config import Settings, load_settings
from shared.context import RunLog
from shared.errors import Conflict, DataError, NotFound
from shared.ids import now
from shared.layout import job_key
from shared.messages import ScoreFile
from shared.messaging import create_celery
from shared.outcome import Failure, TaskLike, retrying, settle
from shared.recycle import recycle_when_idle
from shared.registry import get_alias, version_record
from shared.results import TERMINAL
from shared.runtime import class_labels, load_scorer
from shared.storage import Store

log = logging.getLogger(__name__)
TASK = "batch.run"


def production_model(
    store: Store, pipeline: str, *, onnx: bool, signing_key: bytes
) -> tuple[int, BatchModel]:
    """The pipeline's production version, loaded (signed manifest checked) for scoring."""
    pointer = get_alias(store, pipeline, "production")
    if pointer is None:
        raise DataError(f"pipeline {pipeline!r} has no production model yet", field="pipeline")
    record = version_record(store, pipeline, int(pointer["version"]))
    scorer = load_scorer(store, record, loader=load_model, onnx=onnx, signing_key=signing_key)
    inputs = CompiledSignature.compile(record["signature"]["inputs"])
    return int(record["version"]), BatchModel(inputs, scorer, class_labels(record, scorer))


def run_job(store: Store, settings: Settings, job: ScoreFile) -> dict[str, Any]:
    """Score the file once; the status says running, then succeeded or failed with the reason."""
    key = job_key(job.pipeline, job.job_id)
    try:
        queued = dict(store.get_json(key))
    except NotFound:
        queued = {}
    if queued.get("state") in TERMINAL:
        return queued  # a redelivered job that already ended
    # The upload's ETag and time, as the watcher recorded them: `cauce batch` finds its job by them.
    upload = {k: queued[k] for k in ("etag", "modified") if k in queued}
    base = {"job_id": job.job_id, "pipeline": job.pipeline, "source": job.key, **upload}
    base["started"] = now()
    store.put_json(key, {**base, "state": "running"})
    clock = time.perf_counter()
    status: dict[str, Any] = {}

    def fail(failure: Failure) -> None:
        status.update(base, state="failed", error=failure.error, field=failure.field)

    etag = queued.get("etag")
    scored = settle(lambda: _score(store, settings, job, etag), fail=fail, log=job_log(job))
    if scored is not None:
        status.update({**base, **scored, "state": "succeeded"})
    status.update(finished=now(), seconds=round(time.perf_counter() - clock, 3))
    store.put_json(key, status)
    return status


def job_log(job: ScoreFile) -> RunLog:
    """The log of one batch job: every line names the job and the pipeline."""
    return RunLog(log, {"job_id": job.job_id, "pipeline": job.pipeline})


def _score(store: Store, settings: Settings, job: ScoreFile, etag: str | None) -> dict[str, Any]:
    version, model = production_model(
        store,
        job.pipeline,
        onnx=settings.serve_runtime == "auto",
        signing_key=settings.signing_key_bytes(),
    )
    name = PurePosixPath(job.key).name
    output = job_key(job.pipeline, job.job_id, f"{PurePosixPath(name).stem}.predictions.csv")
    with tempfile.TemporaryDirectory(prefix="cauce-batch-") as tmp:
        source, target = Path(tmp) / name, Path(tmp) / "out.csv"
        try:  # exactly the upload this job was queued for
            store.download(job.key, source, if_match=etag)
        except Conflict:
            raise DataError(
                f"{job.key} was replaced after this job was queued; the new file has a job of "
                "its own",
                field="file",
            ) from None
        counts = score_file(model, source, target, rows=settings.batch_chunk_rows)
        store.upload(target, output)
    return {"model_version": version, "runtime": model.scorer.runtime, "output": output, **counts}


def create_worker(settings: Settings | None = None) -> Celery:
    """The batch worker's Celery app with `batch.run` registered."""
    settings = settings or load_settings()
    app = create_celery(settings, "batch")
    recycle_when_idle(app, settings.worker_idle_recycle_seconds)
    store = Store.from_settings(settings)

    @app.task(name=TASK, bind=True, max_retries=8)
    def run(task: TaskLike, **body: Any) -> None:
        try:
            job = ScoreFile.model_validate(body)
        except ValidationError as exc:
            log.error("dropping malformed batch message %r: %s", body, exc)
            return
        retrying(task, lambda: run_job(store, settings, job), log=job_log(job))

    return app
