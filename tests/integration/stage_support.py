"""Hand-written stand-ins for the Celery task a stage runner is handed (no broker needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeApp:
    """Records the tasks sent instead of sending them."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def send_task(
        self, name: str, *, kwargs: dict[str, Any], queue: str, headers: dict[str, Any]
    ) -> None:
        """Record the task."""
        self.sent.append((name, kwargs))


class Retry(Exception):
    """What FakeTask.retry returns, for a test to see the retry."""


@dataclass
class FakeRequest:
    """The delivery: how often it was retried, its id, the worker's name."""

    retries: int = 0
    id: str = "task-1"
    hostname: str = "worker-1@test"


@dataclass
class FakeTask:
    """A bound task as the runner sees it."""

    app: FakeApp = field(default_factory=FakeApp)
    request: FakeRequest = field(default_factory=FakeRequest)

    def retry(self, *, countdown: int, exc: Exception) -> Retry:
        """The exception that would retry the task."""
        return Retry(f"retry in {countdown}s: {exc}")
