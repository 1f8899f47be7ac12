"""The adapter every stage task runs through: idempotent, cached, status last, next by name."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task
from pydantic import ValidationError

from shared.caching import cache_key, lookup, remember, restore
from shared.config import Settings, load_settings
from shared.context import StageContext
from shared.errors import DataError, TransientError
from shared.heartbeat import heartbeat
from shared.ids import now
from shared.messages import RunStage
from shared.messaging import create_celery, send
from shared.pipeline import TASKS, next_stage
from shared.runs import read_run, read_status, write_status
from shared.storage import Store

log = logging.getLogger(__name__)

Work = Callable[[StageContext], dict[str, Any]]
OnFailure = Callable[[StageContext, DataError], None]
CacheInputs = Callable[[StageContext], dict[str, Any]]


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
    runner = StageRunner(
        stage=stage,
        store=Store.from_settings(settings),
        settings=settings,
        work=work,
        on_failure=on_failure,
        cache_inputs=cache_inputs,
    )

    @app.task(name=TASKS[stage], bind=True, max_retries=8)
    def run(task: Task, **body: Any) -> None:
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

    def __call__(self, task: Task, message: RunStage) -> None:
        """Run the stage for one message, retrying transient errors."""
        self.retrying(task, message.run_id, lambda: self.run(task, message))

    def retrying(self, task: Task, run_id: str, action: Callable[[], None]) -> None:
        """Do `action`; an unreachable store or broker retries the task with backoff."""
        try:
            action()
        except TransientError as exc:
            countdown = min(60, 2**task.request.retries)
            log.warning(
                "[run_id=%s stage=%s] transient error, retry in %ss: %s",
                run_id,
                self.stage,
                countdown,
                exc,
            )
            raise task.retry(countdown=countdown, exc=exc) from exc

    def context(self, app: Celery, message: RunStage) -> StageContext:
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

    def run(self, task: Task, message: RunStage) -> None:
        """Skip if done, record running, do the work, record the outcome, send the next stage."""
        status = read_status(self.store, message.run_id, self.stage) or {}
        if status.get("state") == "succeeded":
            if not status.get("ends_run"):
                self.send_next(task.app, message)  # redelivered after the work was done
            return
        if status.get("state") == "failed":
            return
        ctx = self.context(task.app, message)
        attempts = int(status.get("attempts", 0)) + 1
        retries = int(task.request.retries or 0)
        interrupted = int(status.get("interrupted", 0))
        if status.get("state") == "running" and retries == int(status.get("retries", 0)):
            interrupted += 1  # the last attempt never finished and was not a retry: it was lost
        if interrupted > self.settings.max_redeliveries:
            self.record(
                ctx,
                "failed",
                status.get("started") or now(),
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
        outputs = self.attempt(ctx, started, attempts)
        if outputs is None:
            return
        if ctx.deferred:
            self.record(ctx, "running", started, **outputs)
            return
        self.complete(ctx, outputs, started=started, attempts=attempts)

    def attempt(self, ctx: StageContext, started: str, attempts: int) -> dict[str, Any] | None:
        """Reuse a cached result or do the work; record a data error or a crash as a failure."""
        ctx.log.info("stage started (attempt %s)", attempts)
        beat = heartbeat(
            self.store, ctx.key("heartbeat.json"), every=self.settings.heartbeat_seconds
        )
        try:
            with beat:
                outputs = self.from_cache(ctx) or self.work(ctx)
                time.sleep(self.settings.stage_delay(self.stage))  # fault-injection tests only
                return outputs
        except TransientError:
            raise
        except DataError as exc:
            ctx.log.warning("stage failed: %s", exc)
            self.record(ctx, "failed", started, attempts, error=str(exc), field=exc.field)
            if self.on_failure is not None:
                self.on_failure(ctx, exc)
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

    def from_cache(self, ctx: StageContext) -> dict[str, Any] | None:
        """The result of an earlier identical execution, its artifacts copied into this run."""
        if self.cache_inputs is None:
            return None
        key = ctx.memo["cache_key"] = cache_key(self.stage, self.cache_inputs(ctx))
        entry = lookup(self.store, self.stage, key) if ctx.caching() else None
        if entry is None or not restore(self.store, entry, stage=self.stage, run_id=ctx.run_id):
            return None
        ctx.log.info("reusing the cached result of run %s", entry["run_id"])
        return {**entry["result"], "cached_from": entry["run_id"]}

    def complete(
        self, ctx: StageContext, outputs: dict[str, Any], *, started: str, attempts: int
    ) -> None:
        """Record success (and the cache entry), then send the next stage unless the run ends."""
        key = ctx.memo.get("cache_key") or outputs.pop("cache_key", None)
        fields = {**outputs, "cache_key": key, "ends_run": ctx.ends_run or None}
        self.record(ctx, "succeeded", started, attempts, finished=now(), **fields)
        if self.cache_inputs and key and not outputs.get("cached_from") and not ctx.ends_run:
            remember(self.store, self.stage, key, run_id=ctx.run_id, status=outputs)
        ctx.log.info("stage succeeded")
        if not ctx.ends_run:
            self.send_next(ctx.app, RunStage(run_id=ctx.run_id, pipeline=ctx.pipeline))

    def record(
        self,
        ctx: StageContext,
        state: str,
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

    def send_next(self, app: Celery, message: RunStage) -> None:
        """Enqueue the next stage of the run by name, if there is one."""
        following = next_stage(self.stage)
        if following is not None:
            send(app, TASKS[following], message, queue=following)
