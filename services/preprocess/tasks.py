"""preprocess.run: split the table and fit the feature transformer on the training split only."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import pandas as pd
from celery import Celery

from services.preprocess.features import build_features, date_columns, split_frame
from shared.artifacts import dump_model
from shared.context import StageContext
from shared.drift import reference
from shared.plugins import feature_step
from shared.results import Preprocessed
from shared.signature import input_signature
from shared.stage import create_stage_worker

# Imported by the worker's main process before Celery forks its pool, so that no pool process
# (a replacement one included) pays for them on its first task: skops.io alone takes 0.5-2 s.
PRELOAD = ("skops.io",)
REFERENCE_ROWS = 100_000  # rows of the training split drift's reference is computed from


def cache_inputs(ctx: StageContext) -> dict[str, Any]:
    """What preprocessing depends on: the ingested table and the split settings."""
    spec = ctx.spec()
    return {
        "ingest": ctx.upstream("ingest").cache_key,
        "spec": spec.model_dump(include={"target", "task", "split", "features"}),
        # the steps' packages and versions: new plugin code recomputes the features
        "plugins": [feature_step(s.use, field="features").record() for s in spec.features.steps],
    }


def preprocess(ctx: StageContext) -> Preprocessed:
    """Write the three splits, the transformer fitted on train, and the input signature."""
    spec = ctx.spec()
    frame = ctx.store.get_frame(ctx.key("data.parquet", "ingest"))
    parts = split_frame(
        frame,
        target=spec.target,
        task=spec.task,
        test=spec.split.test,
        validation=spec.split.validation,
        seed=spec.split.seed,
    )
    for name, part in parts.items():
        ctx.store.put_frame(ctx.key(f"{name}.parquet"), part)
    features = parts["train"].drop(columns=[spec.target])
    dates = date_columns(ctx.store.get_json(ctx.key("profile.json", "ingest")), features.columns)
    transformer = build_features(
        features, steps=spec.features.steps, builtin=spec.features.builtin, dates=dates
    ).fit(features)
    ctx.store.put_bytes(ctx.key("transformer.skops"), dump_model(transformer))
    ctx.store.put_json(ctx.key("signature.json"), input_signature(features, dates=dates))
    ctx.store.put_json(ctx.key("reference.json"), drift_reference(features, dates, spec.split.seed))
    return Preprocessed(
        rows={name: len(part) for name, part in parts.items()},
        features=len(features.columns),
        outputs=[
            *(f"{name}.parquet" for name in parts),
            "transformer.skops",
            "signature.json",
            "reference.json",
        ],
    )


def drift_reference(features: pd.DataFrame, dates: Mapping[str, str], seed: int) -> dict[str, Any]:
    """The training split's reference distributions that drift is measured against (at most
    REFERENCE_ROWS rows of it; date columns left out: every day is a new value)."""
    if len(features) > REFERENCE_ROWS:
        features = features.sample(n=REFERENCE_ROWS, random_state=seed)
    return reference(features.drop(columns=list(dates)))


def create_worker() -> Celery:
    """The preprocess worker's Celery app with its task registered."""
    app, _ = create_stage_worker("preprocess", preprocess, cache_inputs=cache_inputs)
    for name in PRELOAD:
        importlib.import_module(name)
    return app
