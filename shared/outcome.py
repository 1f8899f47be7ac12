"""One outcome policy for every task (stages, trials, selection, batch jobs): bad data fails with
the reason a person can act on, an unreachable store or broker retries with backoff, and anything
else fails as "internal error: <Type>: <message>" with its traceback in the log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from shared.errors import DataError, TransientError

T = TypeVar("T")
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Request(Protocol):
    """The parts of a Celery task's request the tasks read."""

    @property
    def retries(self) -> int | None:
        """How many times this task was retried so far."""

    @property
    def id(self) -> str | None:
        """The task's id."""

    @property
    def hostname(self) -> str | None:
        """The node name of the worker running it."""


class Sender(Protocol):
    """What a task needs of its Celery app: sending a task by name."""

    def send_task(
        self, name: str, *, kwargs: dict[str, Any], queue: str, headers: dict[str, Any]
    ) -> Any:
        """Enqueue the task `name` with `kwargs` on `queue`, with our own headers."""


class TaskLike(Protocol):
    """The parts of a bound `celery.Task` the tasks use (tests pass a small fake)."""

    @property
    def request(self) -> Request:
        """The current delivery."""

    @property
    def app(self) -> Sender:
        """The Celery app, to send the next task."""

    def retry(self, *, countdown: int, exc: Exception) -> Exception:
        """The exception that, raised, retries the task after `countdown` seconds."""


@dataclass(frozen=True)
class Failure:
    """Why a task failed: the reason shown to users, the input field it names, the data error."""

    error: str
    field: str | None = None
    data_error: DataError | None = None


def retrying(task: TaskLike, action: Callable[[], T], *, log: Log) -> T:
    """Do `action`; a transient error retries the task with backoff (1 s, 2 s, ... 60 s)."""
    try:
        return action()
    except TransientError as exc:
        countdown = min(60, 2 ** int(task.request.retries or 0))
        log.warning("transient error, retry in %ss: %s", countdown, exc)
        raise task.retry(countdown=countdown, exc=exc) from exc


def settle(action: Callable[[], T], *, fail: Callable[[Failure], None], log: Log) -> T | None:
    """Do `action`; a data error or a crash is handed to `fail` (and None returned), a transient
    error is raised on to be retried."""
    try:
        return action()
    except TransientError:
        raise
    except DataError as exc:
        log.warning("failed: %s", exc)
        fail(Failure(str(exc), exc.field, exc))
    except Exception as exc:  # a bug, not bad data: fail with what happened
        log.exception("crashed")
        fail(Failure(f"internal error: {type(exc).__name__}: {exc}"))
    return None
