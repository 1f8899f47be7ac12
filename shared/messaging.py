"""Every Celery app is built here, the same way (JSON only, late acks, one message at a time),
and every task is sent here, with a header of our own that says what it asks for."""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Celery

from shared.config import Settings
from shared.messages import Message
from shared.outcome import Sender
from shared.pipeline import STAGES

# Our own header on every message we send: the task and its message, so that what waits in a
# queue can be read without depending on how Celery formats its own headers.
HEADER = "cauce-work"


def create_celery(settings: Settings, name: str) -> Celery:
    """A Celery app wired to the broker with cauce's delivery rules."""
    app = Celery(name, broker=settings.broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_routes={f"{stage}.*": {"queue": stage} for stage in STAGES},
        task_default_queue="default",
        # At-least-once: ack after the work, hand the message back if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(1, settings.task_time_limit - 30),
        # Redis redelivers an unacked message after this long: keep it above the time limit.
        broker_transport_options={"visibility_timeout": settings.task_time_limit + 300},
        broker_connection_retry_on_startup=True,
        # Soft shutdown: finish the current task within the grace period or hand it back.
        worker_soft_shutdown_timeout=settings.shutdown_grace_seconds,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


def send(app: Sender, task: str, message: Message, *, queue: str) -> None:
    """Send a task by name, with a header of our own that says what work it asks for."""
    body = message.model_dump()
    app.send_task(task, kwargs=body, queue=queue, headers={HEADER: {"task": task, **body}})


def waiting(broker: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The work that each message waiting in a queue asks for (messages we did not send skipped)."""
    found = []
    for raw in broker.lrange(queue, 0, -1):
        try:
            work = json.loads(raw).get("headers", {}).get(HEADER)
        except (ValueError, AttributeError):
            continue  # not a kombu JSON envelope
        if isinstance(work, dict):
            found.append(work)
    return found
