"""The prediction service: every pipeline's production model behind MLflow and OIP v2 routes."""

from __future__ import annotations

import logging

from flask import Flask

from services.serve.handlers import register_handlers
from services.serve.metrics import RequestCounter
from services.serve.models import ModelCache
from services.serve.views import bp
from shared.artifacts import load_model
from shared.config import Settings, load_settings
from shared.storage import Store

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, store: Store | None = None, *, start_poller: bool = True
) -> Flask:
    """Build the app; the model cache polls the registry unless `start_poller` is False."""
    settings = settings or load_settings()
    store = store or Store.from_settings(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    cache = ModelCache(store, loader=load_model, signing_key=settings.signing_key_bytes())
    app.extensions["cauce.settings"] = settings
    app.extensions["cauce.models"] = cache
    app.extensions["cauce.requests"] = RequestCounter()
    app.register_blueprint(bp)
    register_handlers(app)
    if start_poller:
        cache.start(settings.serve_poll_seconds)
        log.info(
            "polling bucket %s for production models every %ss",
            settings.bucket,
            settings.serve_poll_seconds,
        )
    return app
