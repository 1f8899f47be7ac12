"""The prediction service: every pipeline's production model behind MLflow and OIP v2 routes."""

from __future__ import annotations

import logging

from flask import Flask

from services.serve.capture import PredictionLog
from services.serve.handlers import register_handlers
from services.serve.invoke import Predictions
from services.serve.metrics import ServeMetrics
from services.serve.models import ModelCache
from services.serve.views import bp
from shared.artifacts import load_model
from shared.config import Settings, load_settings
from shared.storage import Store

log = logging.getLogger(__name__)


def limit_threads() -> None:
    """One thread per process for the numeric libraries: a serving process answers many small
    requests at once, and thread pools per request only fight over the cores (see
    docs/benchmarks.md). Processes scale out instead: granian workers, replicas."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def create_app(
    settings: Settings | None = None, store: Store | None = None, *, start_poller: bool = True
) -> Flask:
    """Build the app; the model cache follows the registry (announced moves and polling) unless
    `start_poller` is False."""
    settings = settings or load_settings()
    store = store or Store.from_settings(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    limit_threads()
    cache = ModelCache(
        store,
        loader=load_model,
        onnx=settings.serve_runtime == "auto",
        signing_key=settings.signing_key_bytes(),
    )
    app.extensions["cauce.settings"] = settings
    app.extensions["cauce.models"] = cache
    metrics = ServeMetrics(cache, store)
    app.extensions["cauce.metrics"] = metrics
    app.register_blueprint(bp)
    token = settings.api_token.get_secret_value().encode() if settings.api_token else None
    register_handlers(app, token=token)
    # Predictions skip Flask (services/serve/invoke.py); the rest of the app stays behind it.
    prediction_log = PredictionLog(
        store,
        capacity=settings.prediction_log_queue,
        flush_seconds=settings.prediction_log_seconds,
        counted=metrics.log_rows,
    )
    app.extensions["cauce.prediction_log"] = prediction_log
    app.wsgi_app = Predictions(  # type: ignore[method-assign]
        app.wsgi_app,
        cache,
        metrics,
        token=token,
        max_bytes=settings.max_request_bytes,
        log=prediction_log,
    )
    if start_poller:
        prediction_log.start()
        cache.start(settings.serve_poll_seconds)
        if settings.serve_listen:
            cache.listen(settings.broker_url)
        log.info(
            "%spolling bucket %s every %ss",
            "following alias moves announced on the broker; " if settings.serve_listen else "",
            settings.bucket,
            settings.serve_poll_seconds,
        )
    return app
