"""The console: runs, reports and models in a browser, and the JSON API behind every page."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from markupsafe import Markup

from services.console.api import api
from services.console.auth import bp as auth_bp
from services.console.auth import require_token
from services.console.handlers import register_handlers, trusted_host
from services.console.views_models import models_bp
from services.console.views_runs import runs_bp
from services.console.views_start import start_bp
from shared.client.runlist import RunCache
from shared.config import Settings, load_settings
from shared.storage import Store
from shared.text import visible

READERS = 8  # parallel bucket reads per request; boto3's pool holds ten connections


def shown(value: Any) -> Any:
    """What a template prints for a value: users' text with control and direction-changing
    characters written as escapes (HTML escaping leaves U+202E as it is); markup built here
    as it is. Line breaks and tabs stay: a browser sends a textarea's lines back as CRLF, and a
    form shown again after a refusal must send back what the user wrote."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value, keep="\r\n\t")
    return value


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """Build the console; it reads the bucket only, so it works while the workers are down."""
    settings = settings or load_settings()
    store = store or Store.from_settings(settings)
    app = Flask(__name__)
    cap = settings.max_upload_bytes  # unset: no cap here; ingest checks the disk it needs
    app.config["MAX_CONTENT_LENGTH"] = None if cap is None else cap + 64 * 1024
    app.config["TRUSTED_HOSTS"] = settings.console_hosts()  # any other Host header gets a 400
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.jinja_env.autoescape = True  # every template, whatever its name, escapes what it shows
    app.jinja_env.finalize = shown  # and shows hidden characters of users' text as escapes
    app.extensions["cauce.settings"] = settings
    app.extensions["cauce.store"] = store
    app.extensions["cauce.pool"] = ThreadPoolExecutor(READERS, thread_name_prefix="console-read")
    app.extensions["cauce.runs"] = RunCache()
    app.before_request(trusted_host)  # first: nothing else runs for a Host it refuses
    app.before_request(require_token)  # off unless CAUCE_API_TOKEN is set
    register_handlers(app)
    for blueprint in (auth_bp, runs_bp, models_bp, start_bp, api):
        app.register_blueprint(blueprint)
    return app
