"""The long-lived objects a request needs, taken from the app that `create_app` built."""

from __future__ import annotations

from concurrent.futures import Executor

from flask import current_app

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


def pool() -> Executor:
    """The thread pool for reading many objects at once."""
    value: Executor = current_app.extensions["cauce.pool"]
    return value
