"""deploy.run: register an immutable model version and move `production` when the gate passed."""

from __future__ import annotations

import importlib
import io
import json
from typing import Any

import pandas as pd
from celery import Celery

from services.deploy.export import MAX_CHECK_ROWS, export_checked
from services.deploy.promotion import already_promoted, version_meta
from services.deploy.refit import refit
from shared.alerts import model_promoted
from shared.artifacts import dump_model, load_model, plugins_needed
from shared.context import StageContext
from shared.drift import reference
from shared.errors import NotFound
from shared.plugins import register_converters, without_converter
from shared.registry import move_alias, register_version, serving_runtime
from shared.results import Deployed
from shared.stage import create_stage_worker
from shared.wake import announce_alias

ONNX_FILE = "model.onnx"
REFERENCE_FILE = "reference.json"


# Imported by the worker's main process before Celery forks its pool, so that no pool process
# (a replacement one included) pays for them on its first task: skops.io alone takes 0.5-2 s.
PRELOAD = ("skops.io", "skl2onnx", "onnxruntime")


def deploy(ctx: StageContext) -> Deployed:
    """Register the trained model, refitted on the rows the spec's `refit` names; promote it if
    it beat production."""
    evaluation = ctx.upstream("evaluate")
    meta = version_meta(
        ingest=ctx.upstream("ingest"),
        train=ctx.upstream("train"),
        evaluation=evaluation,
        signature=ctx.store.get_json(ctx.key("signature.json", "preprocess")),
        source=ctx.run["source"]["key"],
    )
    model = ctx.store.get_bytes(ctx.key("model.skops", "train"))
    measured = load_model(model)
    served, meta["fitted_on"] = refit(ctx, measured, splits=ctx.spec().refit)
    if served is not measured:
        model = dump_model(served)
        if meta["task"] == "classification":
            meta["classes"] = served.classes_.tolist()
    meta["plugins"] = plugins_needed(model)  # a prediction service must have these installed
    meta["monitoring"] = ctx.spec().monitoring.model_dump()  # what the service logs, drift's window
    rows = test_rows(ctx, meta["signature"]["inputs"])
    onnx, meta["onnx"] = export(ctx, served, meta, rows)
    meta.update(serving_runtime(meta))
    files = {ONNX_FILE: onnx} if onnx is not None else {}
    baseline = drift_baseline(ctx, served, rows)
    if baseline is not None:
        files[REFERENCE_FILE] = baseline
    record = register_version(
        ctx.store,
        ctx.pipeline,
        run_id=ctx.run_id,
        model=model,
        meta=meta,
        files=files,
        signing_key=ctx.settings.signing_key_bytes(),
    )
    promoted = evaluation.gate.passed
    if promoted and not already_promoted(ctx.store, ctx.pipeline, ctx.run_id):
        pointer = move_alias(
            ctx.store,
            ctx.pipeline,
            record["version"],
            run_id=ctx.run_id,
            reason=evaluation.gate.reason,
        )
        announce_alias(ctx.settings.broker_url, pointer)  # every prediction service, at once
        model_promoted(
            ctx.settings.broker_url,
            pipeline=ctx.pipeline,
            version=record["version"],
            previous=pointer["previous"],
            run_id=ctx.run_id,
            reason=evaluation.gate.reason,
        )
    ctx.log.info(
        "registered v%s (promoted: %s; served by %s%s)",
        record["version"],
        promoted,
        meta["runtime"],
        f": {meta['runtime_reason']}" if meta["runtime_reason"] else "",
    )
    return Deployed(version=record["version"], promoted=promoted, reason=evaluation.gate.reason)


def test_rows(ctx: StageContext, inputs: list[dict[str, str]]) -> pd.DataFrame:
    """The first MAX_CHECK_ROWS rows of this run's test split, input columns only."""
    body = io.BytesIO(ctx.store.get_bytes(ctx.key("test.parquet", "preprocess")))
    return pd.read_parquet(body, columns=[column["name"] for column in inputs]).head(MAX_CHECK_ROWS)


def drift_baseline(ctx: StageContext, served: Any, rows: pd.DataFrame) -> bytes | None:
    """The training split's distributions (preprocess's reference) and the served model's
    predictions on the test rows: what drift compares served traffic with. None for a run
    preprocessed before preprocess kept a reference: its version has no drift measured."""
    try:
        baseline = ctx.store.get_json(ctx.key(REFERENCE_FILE, "preprocess"))
    except NotFound:
        ctx.log.info(
            "no %s from preprocess: drift is not measured for this version", REFERENCE_FILE
        )
        return None
    predicted = pd.DataFrame({"prediction": served.predict(rows)})
    baseline["prediction"] = reference(predicted)["features"]["prediction"]
    return json.dumps(baseline).encode()


def export(
    ctx: StageContext, estimator: object, meta: dict[str, Any], rows: pd.DataFrame
) -> tuple[bytes | None, dict[str, Any]]:
    """Try the ONNX export, checked against scikit-learn on `rows` of the test split."""
    plain = without_converter(meta["plugins"])
    if plain:
        reason = f"plugin {', '.join(plain)} declares no ONNX converter"
        ctx.log.info("ONNX export: not tried (%s)", reason)
        return None, {"passed": False, "reason": reason, "file": None}
    register_converters(plugin["name"] for plugin in meta["plugins"])
    onnx, check = export_checked(
        estimator, rows, meta["signature"]["inputs"], classify=meta["task"] == "classification"
    )
    ctx.log.info("ONNX export: %s", "kept" if onnx is not None else f"not used ({check})")
    return onnx, {**check, "file": ONNX_FILE if onnx is not None else None}


def create_worker() -> Celery:
    """The deploy worker's Celery app with its task registered."""
    app, _ = create_stage_worker("deploy", deploy)
    for name in PRELOAD:
        importlib.import_module(name)
    return app
