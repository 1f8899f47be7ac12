"""deploy.run: register an immutable model version and move `production` when the gate passed."""

from __future__ import annotations

from typing import Any

from celery import Celery

from services.deploy.promotion import already_promoted, version_meta
from shared.context import StageContext
from shared.registry import move_alias, register_version
from shared.stage import create_stage_worker


def deploy(ctx: StageContext) -> dict[str, Any]:
    """Register the trained model; promote it if it beat production."""
    evaluation = ctx.upstream("evaluate")
    meta = version_meta(
        ingest=ctx.upstream("ingest"),
        train=ctx.upstream("train"),
        evaluation=evaluation,
        signature=ctx.store.get_json(ctx.key("signature.json", "preprocess")),
        source=ctx.run["source"]["key"],
    )
    model = ctx.store.get_bytes(ctx.key("model.skops", "train"))
    record = register_version(
        ctx.store,
        ctx.pipeline,
        run_id=ctx.run_id,
        model=model,
        meta=meta,
        signing_key=ctx.settings.signing_key_bytes(),
    )
    promoted = bool(evaluation["gate"]["passed"])
    if promoted and not already_promoted(ctx.store, ctx.pipeline, ctx.run_id):
        move_alias(
            ctx.store,
            ctx.pipeline,
            record["version"],
            run_id=ctx.run_id,
            reason=evaluation["gate"]["reason"],
        )
    ctx.log.info("registered v%s (promoted: %s)", record["version"], promoted)
    return {
        "version": record["version"],
        "promoted": promoted,
        "reason": evaluation["gate"]["reason"],
    }


def create_worker() -> Celery:
    """The deploy worker's Celery app with its task registered."""
    app, _ = create_stage_worker("deploy", deploy)
    return app
