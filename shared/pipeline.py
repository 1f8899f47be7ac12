"""The stage order, in one place: every stage sends the next task by the name found here."""

from __future__ import annotations

STAGES: tuple[str, ...] = ("ingest", "preprocess", "train", "evaluate", "deploy")

# Each stage's task is `<stage>.run` on the queue named after the stage.
TASKS: dict[str, str] = {stage: f"{stage}.run" for stage in STAGES}


def next_stage(stage: str) -> str | None:
    """The stage after `stage`, or None when it is the last."""
    position = STAGES.index(stage)
    return STAGES[position + 1] if position + 1 < len(STAGES) else None
