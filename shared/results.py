"""What the stages hand each other through `status.json`: each stage's state and counts, and its
result (Ingested, Preprocessed, Trained, Evaluated, Deployed), read back by the stages after it.

Every model keeps the fields it does not declare, so a status.json written by an older or newer
version still reads, and writing a model back gives the same JSON it was read from. A field no
later stage needs is optional.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

RunState = Literal["queued", "running", "succeeded", "failed"]
STATES: tuple[RunState, ...] = get_args(RunState)
TERMINAL: tuple[RunState, ...] = ("succeeded", "failed")  # a run or job in these has ended
StageState = Literal["running", "succeeded", "failed"]


class Record(BaseModel):
    """Base of what status.json holds: fields it does not declare are kept, not refused."""

    model_config = ConfigDict(extra="allow")

    def fields(self) -> dict[str, Any]:
        """The fields as written or read (unset defaults left out), ready for status.json."""
        return self.model_dump(exclude_unset=True)


class StageStatus(Record):
    """A stage's status.json: written when it starts, and again when it ends."""

    stage: str | None = None
    run_id: str | None = None
    state: StageState
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    attempts: int = 0
    retries: int = 0
    interrupted: int = 0  # deliveries whose worker stopped mid-stage
    error: str | None = None
    field: str | None = None  # the input field a data error names
    cache_key: str | None = None
    cached_from: str | None = None  # the run whose cached result this stage reused
    ends_run: bool | None = None


class Result(Record):
    """What a stage's work produced: its fields go into status.json beside the state."""

    outputs: list[str] | None = None  # the stage's artifacts (what the step cache copies)
    cache_key: str | None = None
    cached_from: str | None = None


class Ingested(Result):
    """The dropped file, checked and written as a table (or recognised as a duplicate)."""

    sha256: str
    bytes: int | None = None
    rows: int | None = None
    columns: int | None = None
    target: str | None = None
    task: str | None = None
    target_guessed: bool | None = None  # no target in the spec: the table's named or last column
    task_guessed: bool | None = None  # no task in the spec: inferred from the target's values
    duplicate_of: str | None = None  # the earlier run of the same data and spec
    # The data checks' warnings: how the drop differs from the production model's training data.
    warnings: list[str] | None = None


class Preprocessed(Result):
    """The splits, the fitted transformer and the input signature."""

    rows: dict[str, int]
    features: int


class Planned(Result):
    """The tuning plan, written while its trials run (train's status until selection)."""

    trials_planned: int
    parallelism: int
    budget_seconds: float | None = None
    selection: dict[str, Any] | None = None


class Best(Record):
    """The trial that won the search."""

    estimator: str
    params: dict[str, Any]
    score: float


class Trained(Result):
    """The best trial, refitted on the training split and saved."""

    best: Best
    metric: str
    classes: list[Any] | None = None
    trials: int | None = None
    failed_trials: int = 0
    stopped_trials: int = 0  # reached the time budget while fitting
    skipped_trials: int = 0  # their turn came after the budget was used up
    budget_seconds: float | None = None
    until_budget: bool = False  # `trials: auto`: trials ran until the budget was spent
    selection: dict[str, Any] | None = None  # {"method": "holdout"} or {"method": "cv", "folds": k}
    top_trials: list[dict[str, Any]] | None = None
    selected_by: str | None = None
    # The served model's fit after the search (a blend's members, or the best trial's refit;
    # about 0 when selection reused the trial's own fitted model).
    fit_seconds: float | None = None


class Gate(Record):
    """Whether the candidate beat production, and why."""

    passed: bool
    reason: str
    metric: str | None = None
    candidate: float | None = None
    champion: float | None = None


class Evaluated(Result):
    """The candidate's and production's metrics on the test split, and the gate's decision."""

    metrics: dict[str, Any]
    champion_version: int | None = None
    champion_metrics: dict[str, Any] | None = None
    gate: Gate
    test_rows: int | None = None


class Deployed(Result):
    """The registered version and whether it became production."""

    version: int
    promoted: bool
    reason: str


# What each stage's status.json holds once the stage has succeeded.
RESULTS: dict[str, type[Result]] = {
    "ingest": Ingested,
    "preprocess": Preprocessed,
    "train": Trained,
    "evaluate": Evaluated,
    "deploy": Deployed,
}
