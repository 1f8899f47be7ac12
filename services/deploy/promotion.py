"""What a registered version records, and whether a run has already moved the alias."""

from __future__ import annotations

from typing import Any

from shared.registry import alias_history
from shared.results import Evaluated, Ingested, Trained


def version_meta(
    *,
    ingest: Ingested,
    train: Trained,
    evaluation: Evaluated,
    signature: list[dict[str, Any]],
    source: str,
) -> dict[str, Any]:
    """The record of a new model version: signature, metrics and lineage."""
    return {
        "task": ingest.task,
        "target": ingest.target,
        "classes": train.classes,
        "estimator": train.best.estimator,
        "params": train.best.params,
        "metric": train.metric,
        "signature": {"inputs": signature},
        "metrics": evaluation.metrics,
        "gate": evaluation.gate.fields(),
        "lineage": {"dataset_sha256": ingest.sha256, "source": source},
    }


def already_promoted(store: Any, pipeline: str, run_id: str) -> bool:
    """Whether this run moved the production alias before (a redelivered deploy must not again)."""
    return any(move.get("run_id") == run_id for move in alias_history(store, pipeline))
