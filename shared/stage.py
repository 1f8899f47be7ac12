"""The adapter every stage task runs through: idempotent, status last, next stage by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task
from pydantic import ValidationError

from shared.config import Settings, load_settings
from shared.errors import DataError, TransientError
from shared.ids import now
from shared.messages import RunStage
from shared.messaging import create_celery
from shared.pipeline import TASKS, next_stage
from shared.runs import read_run, read_status, write_status
from shared.spec import PipelineSpec
from shared.storage import Store

log = logging.getLogger(__name__)


class RunLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the run, stage and pipeline, and passes them on as fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        fields = self.extra or {}
        prefix = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"[{prefix}] {msg}", {**kwargs, "extra": {**fields, **kwargs.get("extra", {})}}


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
    log: RunLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = RunLog(
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


def create_stage_worker(
    stage: str, work: Work, *, on_failure: OnFailure | None = None, settings: Settings | None = None
) -> Celery:
    """The composition root of a stage worker: settings, a Celery app and the stage's task."""
    settings = settings or load_settings()
    app = create_celery(settings, stage)
    runner = StageRunner(
        stage=stage,
        store=Store.from_settings(settings),
        settings=settings,
        work=work,
        on_failure=on_failure,
    )

    @app.task(name=TASKS[stage], bind=True, max_retries=8)
    def run(task: Task, **body: Any) -> None:
        try:
            message = RunStage.model_validate(body)
        except ValidationError as exc:
            log.error("dropping malformed %s message %r: %s", stage, body, exc)
            return
        runner(task, message)

    return app


@dataclass
class StageRunner:
    """Runs one stage of one run under cauce's delivery rules."""

    stage: str
    store: Store
    settings: Settings
    work: Work
    on_failure: OnFailure | None = None

    def __call__(self, task: Task, message: RunStage) -> None:
        """Run the stage; an unreachable store or broker retries the task with backoff."""
        try:
            self.run(task, message)
        except TransientError as exc:
            countdown = min(60, 2**task.request.retries)
            log.warning(
                "[run_id=%s stage=%s] transient error, retry in %ss: %s",
                message.run_id,
                self.stage,
                countdown,
                exc,
            )
            raise task.retry(countdown=countdown, exc=exc) from exc

    def run(self, task: Task, message: RunStage) -> None:
        """Skip if done, record running, do the work, record the outcome, send the next stage."""
        status = read_status(self.store, message.run_id, self.stage) or {}
        if status.get("state") == "succeeded":
            self.send_next(task.app, message)  # redelivered after the work was done
            return
        if status.get("state") == "failed":
            return
        ctx = StageContext(
            self.stage,
            message.run_id,
            message.pipeline,
            read_run(self.store, message.run_id),
            self.store,
            self.settings,
            task.app,
        )
        attempts = int(status.get("attempts", 0)) + 1
        started = status.get("started") or now()
        if attempts > self.settings.max_redeliveries + 1:
            self.record(
                ctx,
                "failed",
                started,
                attempts - 1,
                error=f"gave up after {attempts - 1} attempts: the worker stopped each "
                "time while running this stage (out of memory or killed?); see its log",
            )
            return
        started = now()
        self.record(ctx, "running", started, attempts)
        outputs = self.attempt(ctx, started, attempts)
        if outputs is not None:
            self.record(ctx, "succeeded", started, attempts, finished=now(), **outputs)
            self.send_next(task.app, message)

    def attempt(self, ctx: StageContext, started: str, attempts: int) -> dict[str, Any] | None:
        """Do the work; record a data error or a crash as the stage's failure."""
        ctx.log.info("stage started (attempt %s)", attempts)
        try:
            outputs = self.work(ctx)
        except TransientError:
            raise
        except DataError as exc:
            ctx.log.warning("stage failed: %s", exc)
            self.record(ctx, "failed", started, attempts, error=str(exc), field=exc.field)
            if self.on_failure is not None:
                self.on_failure(ctx, exc)
            return None
        except Exception as exc:  # a bug, not bad data: fail the run with what happened
            ctx.log.exception("stage crashed")
            self.record(
                ctx,
                "failed",
                started,
                attempts,
                error=f"internal error: {type(exc).__name__}: {exc}",
            )
            return None
        ctx.log.info("stage succeeded")
        return outputs

    def record(
        self, ctx: StageContext, state: str, started: str, attempts: int, **fields: Any
    ) -> None:
        """Write the stage's status.json; a failure also gets its finishing time."""
        if state == "failed":
            fields.setdefault("finished", now())
        write_status(
            self.store,
            ctx.run_id,
            self.stage,
            state=state,
            started=started,
            attempts=attempts,
            **fields,
        )

    def send_next(self, app: Celery, message: RunStage) -> None:
        """Enqueue the next stage of the run by name, if there is one."""
        following = next_stage(self.stage)
        if following is not None:
            app.send_task(TASKS[following], kwargs=message.model_dump(), queue=following)
