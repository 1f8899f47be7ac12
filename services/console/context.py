"""The long-lived objects a request needs, taken from the app that `create_app` built."""

from __future__ import annotations

from flask import current_app

from shared.client.runlist import Reader
from shared.config import Settings
from shared.storage import Store


def store() -> Store:
    """The bucket."""
    value: Store = current_app.extensions["cauce.store"]
    return value


def settings() -> Settings:
    """The console's settings."""
    value: Settings = current_app.extensions["cauce.settings"]
    return value


def reader() -> Reader:
    """Reads runs in parallel, through the cache of what cannot change."""
    return Reader(
        store(), current_app.extensions["cauce.pool"], current_app.extensions["cauce.runs"]
    )
