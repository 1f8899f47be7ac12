"""What a stage's work function receives: the run, the store, the settings, and two signals."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from shared.config import Settings
from shared.errors import DataError
from shared.layout import stage_key
from shared.runs import read_status
from shared.spec import PipelineSpec, parse_spec
from shared.storage import Store

log = logging.getLogger("cauce.stage")


class RunLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the run, stage and pipeline, and passes them on as fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        fields = self.extra or {}
        prefix = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"[{prefix}] {msg}", {**kwargs, "extra": {**fields, **kwargs.get("extra", {})}}


@dataclass
class StageContext:
    """One stage of one run, as its work function sees it."""

    stage: str
    run_id: str
    pipeline: str
    run: dict[str, Any]
    store: Store
    settings: Settings
    app: Celery
    log: RunLog = field(init=False)
    memo: dict[str, Any] = field(default_factory=dict)
    deferred: bool = False
    ends_run: bool = False

    def __post_init__(self) -> None:
        fields = {"run_id": self.run_id, "stage": self.stage, "pipeline": self.pipeline}
        self.log = RunLog(log, fields)

    def key(self, name: str, stage: str | None = None) -> str:
        """The key of an artifact of this run (this stage's unless `stage` is given)."""
        return stage_key(self.run_id, stage or self.stage, name)

    def spec(self) -> PipelineSpec:
        """The spec that ingest resolved for this run (target, task and metric filled in)."""
        return PipelineSpec.model_validate(self.store.get_json(self.key("spec.json", "ingest")))

    def caching(self) -> bool:
        """Whether this run may reuse cached stages (`--no-cache` and `cache: false` say no)."""
        return (
            bool(self.run.get("options", {}).get("cache", True))
            and parse_spec(self.run.get("spec")).cache
        )

    def upstream(self, stage: str) -> dict[str, Any]:
        """The status of an earlier stage of this run."""
        status = read_status(self.store, self.run_id, stage)
        if status is None or status.get("state") != "succeeded":
            raise DataError(f"stage {stage} has not succeeded for run {self.run_id}")
        return status

    def defer(self) -> None:
        """The stage finishes later, in another task (train's trials fan out, then select)."""
        self.deferred = True

    def end_run(self) -> None:
        """Nothing runs after this stage (a duplicate drop points at an earlier run instead)."""
        self.ends_run = True
