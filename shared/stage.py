"""The adapter every stage task runs through: idempotent, status last, next stage by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task
from pydantic import ValidationError

from shared.config import Settings
from shared.errors import DataError, TransientError
from shared.ids import now
from shared.messages import RunStage
from shared.pipeline import TASKS, next_stage
from shared.runs import read_run, read_status, write_status
from shared.spec import PipelineSpec
from shared.storage import Store

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a stage's work function receives: the run, the store and the settings."""

    stage: str
    run_id: str
    pipeline: str
    run: dict[str, Any]
    store: Store
    settings: Settings
    app: Celery
    log: logging.LoggerAdapter[logging.Logger] = field(init=False)

    def __post_init__(self) -> None:
        self.log = logging.LoggerAdapter(
            log, {"run_id": self.run_id, "stage": self.stage, "pipeline": self.pipeline}
        )

    def key(self, name: str, stage: str | None = None) -> str:
        """The key of an artifact of this run (this stage's unless `stage` is given)."""
        return f"runs/{self.run_id}/{stage or self.stage}/{name}"

    def spec(self) -> PipelineSpec:
        """The spec that ingest resolved for this run (target, task and metric filled in)."""
        return PipelineSpec.model_validate(self.store.get_json(self.key("spec.json", "ingest")))

    def upstream(self, stage: str) -> dict[str, Any]:
        """The status of an earlier stage of this run."""
        status = read_status(self.store, self.run_id, stage)
        if status is None or status.get("state") != "succeeded":
            raise DataError(f"stage {stage} has not succeeded for run {self.run_id}")
        return status


Work = Callable[[StageContext], dict[str, Any]]
OnFailure = Callable[[StageContext, DataError], None]


def register_stage(
    app: Celery,
    *,
    stage: str,
    store: Store,
    settings: Settings,
    work: Work,
    on_failure: OnFailure | None = None,
) -> Task:
    """Register `<stage>.run` on `app`, wrapping `work` in cauce's delivery rules."""

    @app.task(name=TASKS[stage], bind=True, max_retries=8)
    def run(task: Task, **body: Any) -> None:
        try:
            message = RunStage.model_validate(body)
        except ValidationError as exc:
            log.error("dropping malformed %s message %r: %s", stage, body, exc)
            return
        execute(
            task,
            stage=stage,
            message=message,
            store=store,
            settings=settings,
            work=work,
            on_failure=on_failure,
        )

    return run


def execute(
    task: Task,
    *,
    stage: str,
    message: RunStage,
    store: Store,
    settings: Settings,
    work: Work,
    on_failure: OnFailure | None,
) -> None:
    """Run one stage once: skip if done, record running, do the work, record the outcome."""
    try:
        _execute(
            task,
            stage=stage,
            message=message,
            store=store,
            settings=settings,
            work=work,
            on_failure=on_failure,
        )
    except TransientError as exc:
        countdown = min(60, 2**task.request.retries)
        log.warning(
            "run %s stage %s: transient error, retry in %ss: %s",
            message.run_id,
            stage,
            countdown,
            exc,
        )
        raise task.retry(countdown=countdown, exc=exc) from exc


def _execute(
    task: Task,
    *,
    stage: str,
    message: RunStage,
    store: Store,
    settings: Settings,
    work: Work,
    on_failure: OnFailure | None,
) -> None:
    status = read_status(store, message.run_id, stage)
    if status and status.get("state") == "succeeded":
        _send_next(task.app, stage, message)  # redelivered after the work was done
        return
    if status and status.get("state") == "failed":
        return
    ctx = StageContext(
        stage,
        message.run_id,
        message.pipeline,
        read_run(store, message.run_id),
        store,
        settings,
        task.app,
    )
    attempts = int((status or {}).get("attempts", 0)) + 1
    if attempts > settings.max_redeliveries + 1:
        _fail(
            ctx,
            f"gave up after {attempts - 1} attempts: the worker stopped each time while "
            "running this stage (out of memory or killed?); see the worker's log",
            status,
        )
        return
    started = now()
    write_status(store, ctx.run_id, stage, state="running", started=started, attempts=attempts)
    ctx.log.info("stage started (attempt %s)", attempts)
    try:
        outputs = work(ctx)
    except TransientError:
        raise
    except DataError as exc:
        ctx.log.warning("stage failed: %s", exc)
        write_status(
            store,
            ctx.run_id,
            stage,
            state="failed",
            started=started,
            finished=now(),
            attempts=attempts,
            error=str(exc),
            field=exc.field,
        )
        if on_failure is not None:
            on_failure(ctx, exc)
        return
    except Exception as exc:  # a bug, not bad data: fail the run with what happened
        ctx.log.exception("stage crashed")
        write_status(
            store,
            ctx.run_id,
            stage,
            state="failed",
            started=started,
            finished=now(),
            attempts=attempts,
            error=f"internal error: {type(exc).__name__}: {exc}",
        )
        return
    write_status(
        store,
        ctx.run_id,
        stage,
        state="succeeded",
        started=started,
        finished=now(),
        attempts=attempts,
        **outputs,
    )
    ctx.log.info("stage succeeded")
    _send_next(task.app, stage, message)


def _fail(ctx: StageContext, reason: str, status: dict[str, Any] | None) -> None:
    started = (status or {}).get("started") or now()
    write_status(
        ctx.store,
        ctx.run_id,
        ctx.stage,
        state="failed",
        started=started,
        finished=now(),
        error=reason,
    )


def _send_next(app: Celery, stage: str, message: RunStage) -> None:
    following = next_stage(stage)
    if following is not None:
        app.send_task(TASKS[following], kwargs=message.model_dump(), queue=following)
