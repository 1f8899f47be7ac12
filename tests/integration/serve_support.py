"""Prediction-service test helpers: real fitted models in the registry, a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from flask import Flask
from sklearn.datasets import load_diabetes, load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier
from werkzeug.serving import make_server

from services.serve.capture import PredictionLog
from shared.artifacts import dump_model
from shared.config import Settings
from shared.registry import move_alias, register_version
from shared.signature import input_signature
from shared.storage import Store
from tests.conftest import SIGNING_KEY


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Iris with snake_case columns and text labels (setosa, versicolor, virginica)."""
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    y = pd.Series([data.target_names[i] for i in data.target], name="species")
    return X, y


def diabetes_xy() -> tuple[pd.DataFrame, pd.Series]:
    """The diabetes regression data."""
    data = load_diabetes(as_frame=True)
    return data.data, data.target.rename("progression")


def fit_iris(kind: str = "logistic") -> Pipeline:
    """A fitted iris classifier: logistic regression or a shallow decision tree."""
    X, y = iris_frame()
    estimator = (
        LogisticRegression(max_iter=500)
        if kind == "logistic"
        else DecisionTreeClassifier(max_depth=2, random_state=0)
    )
    return Pipeline([("impute", SimpleImputer()), ("model", estimator)]).fit(X, y)


def fit_diabetes() -> Pipeline:
    """A fitted ridge regression on diabetes."""
    X, y = diabetes_xy()
    return Pipeline([("impute", SimpleImputer()), ("model", Ridge())]).fit(X, y)


def deploy(
    store: Store,
    pipeline: str,
    model: Pipeline,
    X: pd.DataFrame,
    *,
    task: str,
    target: str,
    run_id: str,
    promote: bool = True,
    monitoring: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Register `model` as a new version (as the deploy stage would) and move production to it."""
    classes = [str(c) for c in model.classes_] if task == "classification" else None
    meta = {
        "task": task,
        "target": target,
        "classes": classes,
        "estimator": type(model[-1]).__name__,
        "params": {},
        "metric": "f1_macro" if classes else "rmse",
        "signature": {"inputs": input_signature(X)},
        "metrics": {"accuracy": 0.95} if classes else {"rmse": 55.0},
        "lineage": {"dataset_sha256": "0" * 64, "source": f"incoming/{pipeline}/data.csv"},
    }
    if monitoring is not None:
        meta["monitoring"] = monitoring
    record = register_version(
        store,
        pipeline,
        run_id=run_id,
        model=dump_model(model),
        meta=meta,
        files=files,
        signing_key=SIGNING_KEY.encode(),
    )
    if promote:
        move_alias(store, pipeline, record["version"], run_id=run_id, reason="test")
    return record


@contextmanager
def running(app: Flask) -> Iterator[str]:
    """Serve `app` on a free port with Werkzeug's threaded server; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def logging_service(
    settings: Settings, store: Store, *, log_store: Store | None = None, **overrides: Any
) -> Iterator[tuple[str, PredictionLog]]:
    """The prediction service over real HTTP, its models loaded and its prediction log writing
    (every 0.2 s unless `overrides` say otherwise; to `log_store` when given)."""
    from services.serve import create_app

    app = create_app(
        settings.model_copy(update={"prediction_log_seconds": 0.2, **overrides}),
        store,
        start_poller=False,
    )
    cache = app.extensions["cauce.models"]
    cache.refresh()
    log: PredictionLog = app.extensions["cauce.prediction_log"]
    if log_store is not None:
        log.store = log_store
    log.start()
    try:
        with running(app) as url:
            yield url, log
    finally:
        log.stop(timeout=5)
        cache.stop()
