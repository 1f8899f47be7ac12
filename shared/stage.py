"""The adapter every stage task runs through: idempotent, cached, status last, next by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from pydantic import ValidationError

from shared.alerts import run_failed
from shared.caching import cache_key, lookup, remember, restore
from shared.config import Settings, load_settings
from shared.context import RunLog, StageContext
from shared.errors import DataError
from shared.heartbeat import heartbeat
from shared.ids import now
from shared.messages import RunStage
from shared.messaging import create_celery, send
from shared.outcome import Failure, Sender, TaskLike, retrying, settle
from shared.pipeline import TASKS, next_stage
from shared.recycle import recycle_when_idle
from shared.results import RESULTS, Result, StageState, StageStatus
from shared.runs import read_run, read_status, write_status
from shared.storage import Store

log = logging.getLogger(__name__)

Work = Callable[[StageContext], Result]
OnFailure = Callable[[StageContext, DataError], None]
CacheInputs = Callable[[StageContext], dict[str, Any]]
Hook = Callable[[StageContext], None]

# Called with each stage's context after its work, before its status is written. Nothing in
# cauce installs one: fault tests do (tests/faults/), to hold a stage while they kill its worker.
AFTER_WORK: list[Hook] = []


def create_stage_worker(
    stage: str,
    work: Work,
    *,
    on_failure: OnFailure | None = None,
    cache_inputs: CacheInputs | None = None,
    settings: Settings | None = None,
) -> tuple[Celery, StageRunner]:
    """The composition root of a stage worker: settings, a Celery app and the stage's task."""
    settings = settings or load_settings()
    app = create_celery(settings, stage)
    if settings.worker_max_memory_mb:
        # Prefork only (how `cauce up` and compose start workers): the pool process whose peak
        # passed the limit exits after its task and the worker forks a fresh one, so the memory
        # of a heavy task (freed or not, fragmented or cached by a library) goes back to the
        # system. The main process, the one a supervisor or `docker stop` signals, stays.
        app.conf.worker_max_memory_per_child = settings.worker_max_memory_mb * 1024  # KiB
    recycle_when_idle(app, settings.worker_idle_recycle_seconds)
    runner = StageRunner(
        stage=stage,
        store=Store.from_settings(settings),
        settings=settings,
        work=work,
        on_failure=on_failure,
        cache_inputs=cache_inputs,
    )

    @app.task(name=TASKS[stage], bind=True, max_retries=8)
    def run(task: TaskLike, **body: Any) -> None:
        message = parse_message(RunStage, body, stage)
        if message is not None:
            runner(task, message)

    return app, runner


def parse_message(kind: type[RunStage], body: dict[str, Any], stage: str) -> Any:
    """The validated message, or None (logged and dropped) when it is malformed."""
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        log.error("dropping malformed %s message %r: %s", stage, body, exc)
        return None


@dataclass
class StageRunner:
    """Runs one stage of one run under cauce's delivery rules."""

    stage: str
    store: Store
    settings: Settings
    work: Work
    on_failure: OnFailure | None = None
    cache_inputs: CacheInputs | None = None

    def __call__(self, task: TaskLike, message: RunStage) -> None:
        """Run the stage for one message, retrying transient errors."""
        self.retrying(task, message, lambda: self.run(task, message))

    def retrying(self, task: TaskLike, message: RunStage, action: Callable[[], None]) -> None:
        """Do `action`; an unreachable store or broker retries the task with backoff."""
        fields = {"run_id": message.run_id, "stage": self.stage, "pipeline": message.pipeline}
        retrying(task, action, log=RunLog(log, fields))

    def context(self, app: Sender, message: RunStage) -> StageContext:
        """The context of this stage of the message's run."""
        return StageContext(
            self.stage,
            message.run_id,
            message.pipeline,
            read_run(self.store, message.run_id),
            self.store,
            self.settings,
            app,
        )

    def status(self, run_id: str) -> StageStatus | None:
        """This stage's status in the run, or None when it has not started."""
        status = read_status(self.store, run_id, self.stage)
        return None if status is None else StageStatus.model_validate(status)

    def run(self, task: TaskLike, message: RunStage) -> None:
        """Skip if done, record running, do the work, record the outcome, send the next stage."""
        status = self.status(message.run_id)
        if status is not None and status.state == "succeeded":
            if not status.ends_run:
                self.send_next(task.app, message)  # redelivered after the work was done
            return
        if status is not None and status.state == "failed":
            return
        ctx = self.context(task.app, message)
        attempts = (status.attempts if status else 0) + 1
        retries = int(task.request.retries or 0)
        interrupted = status.interrupted if status else 0
        if status is not None and status.state == "running" and retries == status.retries:
            interrupted += 1  # the last attempt never finished and was not a retry: it was lost
        if interrupted > self.settings.max_redeliveries:
            self.record(
                ctx,
                "failed",
                (status.started if status else None) or now(),
                attempts,
                interrupted=interrupted,
                error=f"gave up after the worker stopped {interrupted} times while "
                "running this stage (out of memory, or killed?); see the worker's log",
            )
            return
        started = now()
        ctx.memo["tries"] = {
            "attempts": attempts,
            "retries": retries,
            "interrupted": interrupted,
        }
        self.record(ctx, "running", started)
        result = self.attempt(ctx, started, attempts)
        if result is None:
            return
        if ctx.deferred:
            self.record(ctx, "running", started, **result.fields())
            return
        self.complete(ctx, result, started=started, attempts=attempts)

    def attempt(self, ctx: StageContext, started: str, attempts: int) -> Result | None:
        """Reuse a cached result or do the work; record a data error or a crash as a failure."""
        ctx.log.info("stage started (attempt %s)", attempts)
        beat = heartbeat(
            self.store, ctx.key("heartbeat.json"), every=self.settings.heartbeat_seconds
        )

        def work() -> Result:
            with beat:
                result = self.from_cache(ctx)
                if result is None:
                    result = self.work(ctx)
                for hook in AFTER_WORK:
                    hook(ctx)
                return result

        def fail(failure: Failure) -> None:
            self.fail(ctx, failure, started=started, attempts=attempts)

        return settle(work, fail=fail, log=ctx.log)

    def fail(self, ctx: StageContext, failure: Failure, *, started: str, attempts: int) -> None:
        """Record the stage failed with the reason; a data error goes to `on_failure` too."""
        self.record(ctx, "failed", started, attempts, error=failure.error, field=failure.field)
        if failure.data_error is not None and self.on_failure is not None:
            self.on_failure(ctx, failure.data_error)

    def from_cache(self, ctx: StageContext) -> Result | None:
        """The result of an earlier identical execution, its artifacts copied into this run."""
        if self.cache_inputs is None:
            return None
        key = ctx.memo["cache_key"] = cache_key(self.stage, self.cache_inputs(ctx))
        entry = lookup(self.store, self.stage, key) if ctx.caching() else None
        if entry is None or not restore(self.store, entry, stage=self.stage, run_id=ctx.run_id):
            return None
        ctx.log.info("reusing the cached result of run %s", entry["run_id"])
        kind = RESULTS.get(self.stage, Result)
        return kind.model_validate({**entry["result"], "cached_from": entry["run_id"]})

    def complete(self, ctx: StageContext, result: Result, *, started: str, attempts: int) -> None:
        """Record success (and the cache entry), then send the next stage unless the run ends."""
        outputs = result.fields()
        key = ctx.memo.get("cache_key") or outputs.pop("cache_key", None)
        fields = {**outputs, "cache_key": key, "ends_run": ctx.ends_run or None}
        self.record(ctx, "succeeded", started, attempts, finished=now(), **fields)
        if self.cache_inputs and key and not result.cached_from and not ctx.ends_run:
            remember(self.store, self.stage, key, run_id=ctx.run_id, status=outputs)
        ctx.log.info("stage succeeded")
        if not ctx.ends_run:
            self.send_next(ctx.app, RunStage(run_id=ctx.run_id, pipeline=ctx.pipeline))

    def record(
        self,
        ctx: StageContext,
        state: StageState,
        started: str,
        attempts: int | None = None,
        **fields: Any,
    ) -> None:
        """Write the stage's status.json (with this attempt's counts); a failure gets its end."""
        if state == "failed":
            fields.setdefault("finished", now())
        counts = {**ctx.memo.get("tries", {}), **({"attempts": attempts} if attempts else {})}
        fields = {k: v for k, v in {**counts, **fields}.items() if v is not None}
        write_status(self.store, ctx.run_id, self.stage, state=state, started=started, **fields)
        if state == "failed":  # every stage's failure passes here; raising never fails the stage
            reason = str(fields.get("error", ""))
            run_failed(
                self.settings.broker_url,
                pipeline=ctx.pipeline,
                run_id=ctx.run_id,
                stage=self.stage,
                reason=reason,
            )

    def send_next(self, app: Sender, message: RunStage) -> None:
        """Enqueue the next stage of the run by name, if there is one."""
        following = next_stage(self.stage)
        if following is not None:
            send(app, TASKS[following], message, queue=following)
