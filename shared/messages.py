"""The messages that travel on the queues: small JSON records carrying ids and keys, never data."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.errors import DataError
from shared.storage import check_name


def _safe_name(name: str) -> str:
    try:
        return check_name(name)
    except DataError as exc:
        raise ValueError(str(exc)) from None


# A pipeline name becomes a segment of object keys: the same rule as everywhere else.
PipelineName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_safe_name)]


class Message(BaseModel):
    """Base of every message: strict, frozen, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RunStage(Message):
    """Run one stage of one run (the body of every `<stage>.run` task)."""

    run_id: str = Field(min_length=10, max_length=40, pattern=r"^[0-9A-Za-z]+$")
    pipeline: PipelineName


class RunTrial(RunStage):
    """Run one tuning trial of a run's search (`train.trial`)."""

    index: int = Field(ge=0, le=100_000)


class ScoreFile(Message):
    """Score a file dropped under batch/<pipeline>/ with the production model (`batch.run`)."""

    job_id: str = Field(min_length=10, max_length=40, pattern=r"^[0-9A-Za-z]+$")
    pipeline: PipelineName
    key: str = Field(min_length=1, max_length=1024)


class AliasMoved(Message):
    """Announced when a pipeline's alias points at a new version (shared/wake.py)."""

    pipeline: PipelineName
    alias: str = Field(min_length=1, max_length=100)
    version: int = Field(ge=1)


# What an alert is about (README, "Alerts"): the value of its `event` and X-Cauce-Event.
AlertEvent = Literal[
    "run.failed",
    "model.promoted",
    "model.rolled_back",
    "drift.detected",
    "metric.below_threshold",
    "alert.test",
]


class Alert(Message):
    """Something a person should hear about, as the alert webhook posts it (shared/alerts.py)."""

    id: str = Field(min_length=10, max_length=40, pattern=r"^[0-9A-Za-z]+$")
    event: AlertEvent
    time: str
    pipeline: str | None = Field(default=None, max_length=100)
    run_id: str | None = Field(default=None, max_length=40)
    version: int | None = Field(default=None, ge=1)
    message: str = Field(max_length=4000)
    details: dict[str, Any] = Field(default_factory=dict)
