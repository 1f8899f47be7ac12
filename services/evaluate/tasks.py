"""evaluate.run: score candidate and production on the same test split, and decide the gate."""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery

from services.evaluate.metrics import decide, evaluate_model
from services.evaluate.plots import plot_data
from shared.artifacts import load_model
from shared.context import StageContext
from shared.registry import get_alias, load_version
from shared.results import Evaluated
from shared.stage import create_stage_worker

# Imported by the worker's main process before Celery forks its pool, so that no pool process
# (a replacement one included) pays for them on its first task: skops.io alone takes 0.5-2 s.
PRELOAD = ("skops.io",)


def evaluate(ctx: StageContext) -> Evaluated:
    """Write the evaluation report and the gate decision."""
    spec = ctx.spec()
    test = ctx.store.get_frame(ctx.key("test.parquet", "preprocess"))
    X, y = test.drop(columns=[spec.target]), test[spec.target]
    classes = ctx.upstream("train").classes
    candidate = load_model(ctx.store.get_bytes(ctx.key("model.skops", "train")))
    metrics = evaluate_model(candidate, X=X, y=y, task=spec.task, classes=classes)
    champion_version, champion_metrics, note = _score_champion(ctx, X=X, y=y, classes=classes)
    gate = decide(
        candidate=metrics,
        champion=champion_metrics,
        metric=spec.metric,
        min_improvement=spec.gate.min_improvement,
    )
    if note:
        gate["reason"] = f"{gate['reason']} ({note})"
    report = {
        "metrics": metrics,
        "champion_version": champion_version,
        "champion_metrics": champion_metrics,
        "gate": gate,
        "test_rows": len(test),
    }
    plots = plot_data(
        candidate, X=X, y=y, task=spec.task, classes=classes, seed=spec.split.seed
    )  # kept out of status.json, which run listings read
    ctx.store.put_json(ctx.key("report.json"), {**report, "plots": plots})
    return Evaluated.model_validate({**report, "outputs": ["report.json"]})


def _score_champion(
    ctx: StageContext, *, X: Any, y: Any, classes: list[Any] | None
) -> tuple[int | None, dict[str, Any] | None, str]:
    """The production model's metrics on this test split, or why there are none."""
    alias = get_alias(ctx.store, ctx.pipeline)
    if alias is None:
        return None, None, ""
    record, data = load_version(
        ctx.store, ctx.pipeline, alias["version"], signing_key=ctx.settings.signing_key_bytes()
    )
    if record.get("task") != ctx.spec().task:
        return alias["version"], None, f"production v{alias['version']} solves another task"
    try:
        champion = load_model(data)
        metrics = evaluate_model(champion, X=X, y=y, task=record["task"], classes=classes)
    except Exception as exc:  # a champion trained on other columns cannot score this split
        ctx.log.warning("production model cannot score this test split: %s", exc)
        return (
            alias["version"],
            None,
            f"production v{alias['version']} cannot score this data: {exc}",
        )
    return alias["version"], metrics, ""


def create_worker() -> Celery:
    """The evaluate worker's Celery app with its task registered."""
    app, _ = create_stage_worker("evaluate", evaluate)
    for name in PRELOAD:
        importlib.import_module(name)
    return app
