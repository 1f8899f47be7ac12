"""What the prediction service served, as the monitoring checks read it: the prediction log's
rows in a window (services/serve/capture.py writes them) and the window the spec sets."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from shared.layout import prediction_log_prefix, version_key
from shared.registry import get_alias
from shared.storage import Store

DEFAULT_WINDOW_HOURS = 24.0  # shared.spec.Monitoring.window_hours: versions registered before it


def recent_log(store: Store, pipeline: str, *, since: datetime, until: datetime) -> pd.DataFrame:
    """The logged rows of `pipeline` written from `since` to `until` (the day folders between)."""
    parts = []
    day = since.date()
    while day <= until.date():
        prefix = prediction_log_prefix(pipeline, day.isoformat())
        parts += [
            pd.read_parquet(io.BytesIO(store.get_bytes(item.key)))
            for item in store.list_objects(prefix)
        ]
        day += timedelta(days=1)
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    return rows[(rows["time"] >= since) & (rows["time"] <= until)]


def version_record(store: Store, pipeline: str, version: int) -> dict[str, Any]:
    """The record (version.json) of one version."""
    return dict(store.get_json(version_key(pipeline, version)))


def monitoring_of(record: dict[str, Any]) -> dict[str, Any]:
    """A version's `monitoring` section of its spec ({} for versions registered before it)."""
    return dict(record.get("monitoring") or {})


def window_hours(store: Store, pipeline: str) -> float:
    """The window of the production version's spec (24 hours when there is none)."""
    pointer = get_alias(store, pipeline)
    if pointer is None:
        return DEFAULT_WINDOW_HOURS
    record = version_record(store, pipeline, int(pointer["version"]))
    return float(monitoring_of(record).get("window_hours", DEFAULT_WINDOW_HOURS))
