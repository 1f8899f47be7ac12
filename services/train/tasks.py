"""train.run: tune every candidate on the validation split, refit the best, save it."""

from __future__ import annotations

from typing import Any

from celery import Celery

from services.train.training import best_trial, default_candidates, fit_model, tune
from shared.artifacts import dump_model, load_model
from shared.stage import StageContext, create_stage_worker


def train(ctx: StageContext) -> dict[str, Any]:
    """Run the search, record every trial, and save the best candidate as one fitted pipeline."""
    spec = ctx.spec()
    assert spec.target and spec.task and spec.metric and spec.models
    parts = {
        name: ctx.store.get_frame(ctx.key(f"{name}.parquet", "preprocess"))
        for name in ("train", "validation")
    }
    transformer = load_model(ctx.store.get_bytes(ctx.key("transformer.skops", "preprocess")))
    X_train, y_train = parts["train"].drop(columns=[spec.target]), parts["train"][spec.target]
    X_val, y_val = parts["validation"].drop(columns=[spec.target]), parts["validation"][spec.target]
    classes = sorted(y_train.unique().tolist()) if spec.task == "classification" else None
    defaults = dict(default_candidates(spec.task))  # a model listed without `search` gets these
    trials = tune(
        [(model.estimator, model.search or defaults[model.estimator]) for model in spec.models],
        task=spec.task,
        trials_per_candidate=spec.tuning.trials,
        seed=spec.split.seed,
        X_train=transformer.transform(X_train),
        y_train=y_train,
        X_val=transformer.transform(X_val),
        y_val=y_val,
        metric=spec.metric,
        classes=classes,
    )
    ctx.store.put_json(ctx.key("trials.json"), trials)
    best = best_trial(trials, spec.metric)
    model = fit_model(
        transformer=transformer,
        task=spec.task,
        estimator=best["estimator"],
        params=best["params"],
        X=X_train,
        y=y_train,
    )
    ctx.store.put_bytes(ctx.key("model.skops"), dump_model(model))
    return {
        "best": {key: best[key] for key in ("estimator", "params", "score")},
        "metric": spec.metric,
        "classes": classes,
        "trials": len(trials),
        "failed_trials": sum(1 for trial in trials if trial["state"] == "failed"),
        "outputs": ["trials.json", "model.skops"],
    }


def create_worker() -> Celery:
    """The train worker's Celery app with its task registered."""
    return create_stage_worker("train", train)
