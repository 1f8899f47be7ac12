"""Give an idle worker's memory back: its pool processes are replaced once it has been idle.

A pool process keeps what its tasks left behind: the pages it copied from its parent, modules
imported on first use, allocator caches. A process whose task peaked above
`CAUCE_WORKER_MAX_MEMORY_MB` is replaced at once (billiard's max memory per child); the others
are replaced here, after `CAUCE_WORKER_IDLE_RECYCLE_SECONDS` without work, so a stack that went
idle is as small as a fresh one while tasks that come back to back (a search's trials) keep
their warm process. The replacement is Celery's own pool restart: each idle pool process sees
its restart flag within a second, before it takes another job, and exits; the worker forks a
fresh one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, bootsteps
from celery.worker import state

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0


class IdleRecycle(bootsteps.StartStopStep):
    """A worker step: restart the pool once, each time the worker goes idle after work."""

    requires = {"celery.worker.components:Pool", "celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.after: float = worker.app.conf.cauce_idle_recycle_seconds
        self.done = 0  # tasks finished when the pool was last restarted
        self.seen = 0
        self.idle_since = time.monotonic()
        self.timer: Any = None

    def start(self, worker: Any) -> None:
        self.timer = worker.timer.call_repeatedly(CHECK_SECONDS, self.check, (worker,))

    def stop(self, worker: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def check(self, worker: Any) -> None:
        finished = sum(state.total_count.values())
        if state.active_requests or state.reserved_requests or finished != self.seen:
            self.seen = finished
            self.idle_since = time.monotonic()
            return
        if finished != self.done and time.monotonic() - self.idle_since >= self.after:
            self.done = finished
            log.info("idle for %.0fs after work: replacing the pool's processes", self.after)
            worker.pool.restart()


def recycle_when_idle(app: Celery, seconds: float) -> None:
    """Add the idle recycle to the app's workers (0 turns it off)."""
    if seconds <= 0:
        return
    app.conf.worker_pool_restarts = True  # the restart flag each pool process watches
    app.conf.cauce_idle_recycle_seconds = seconds
    app.steps["worker"].add(IdleRecycle)
