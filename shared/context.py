"""What a stage's work function receives: the run, the store, the settings, and two signals."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from shared.config import Settings
from shared.errors import DataError
from shared.layout import stage_key
from shared.outcome import Sender
from shared.results import (
    RESULTS,
    Deployed,
    Evaluated,
    Ingested,
    Preprocessed,
    Result,
    Trained,
)
from shared.runs import read_status
from shared.spec import ResolvedSpec, parse_spec
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
    app: Sender
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

    def spec(self) -> ResolvedSpec:
        """The spec that ingest resolved for this run (target, task, metric and models set)."""
        return ResolvedSpec.model_validate(self.store.get_json(self.key("spec.json", "ingest")))

    def caching(self) -> bool:
        """Whether this run may reuse cached stages (`--no-cache` and `cache: false` say no)."""
        return (
            bool(self.run.get("options", {}).get("cache", True))
            and parse_spec(self.run.get("spec")).cache
        )

    @overload
    def upstream(self, stage: Literal["ingest"]) -> Ingested: ...
    @overload
    def upstream(self, stage: Literal["preprocess"]) -> Preprocessed: ...
    @overload
    def upstream(self, stage: Literal["train"]) -> Trained: ...
    @overload
    def upstream(self, stage: Literal["evaluate"]) -> Evaluated: ...
    @overload
    def upstream(self, stage: Literal["deploy"]) -> Deployed: ...

    def upstream(self, stage: str) -> Result:
        """The result of an earlier stage of this run, which must have succeeded."""
        status = read_status(self.store, self.run_id, stage)
        if status is None or status.get("state") != "succeeded":
            raise DataError(f"stage {stage} has not succeeded for run {self.run_id}")
        return RESULTS[stage].model_validate(status)

    def defer(self) -> None:
        """The stage finishes later, in another task (train's trials fan out, then select)."""
        self.deferred = True

    def end_run(self) -> None:
        """Nothing runs after this stage (a duplicate drop points at an earlier run instead)."""
        self.ends_run = True
