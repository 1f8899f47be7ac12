"""Drift of served inputs: every CAUCE_MONITOR_SECONDS the active watcher compares each
pipeline's recently logged requests (services/serve/capture.py) with the training data of the
version that answered them (its reference.json, written at deploy), and writes a report.

The window is the version's `monitoring.window_hours`; a feature whose population stability
index passes `monitoring.drift_threshold` is flagged in the report and raised as an alert.
Versions with fewer than MIN_ROWS logged rows in the window are reported without an index.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from shared.alerts import drift_detected
from shared.config import Settings
from shared.drift import DEFAULT_THRESHOLD, feature_drift, psi, shares
from shared.errors import NotFound
from shared.layout import LATEST, drift_key, prediction_log_prefix, version_key
from shared.registry import list_pipelines
from shared.storage import Store

log = logging.getLogger(__name__)

MIN_ROWS = 50  # fewer logged rows than this give shares too coarse to compare
INPUT = "input."  # the log's input columns (services/serve/capture.py)
Flagged = Callable[[str, int, str, float, float], None]  # pipeline, version, feature, value, limit


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


def version_drift(baseline: dict[str, Any], rows: pd.DataFrame) -> dict[str, float]:
    """Each feature's index, and the predictions' as "prediction", for one version's rows."""
    inputs = rows[[c for c in rows.columns if c.startswith(INPUT)]]
    inputs = inputs.rename(columns=lambda c: c[len(INPUT) :])
    found = feature_drift(baseline, inputs)
    if "prediction" in baseline:
        expected = baseline["prediction"]
        found["prediction"] = round(
            psi(expected["shares"], shares(expected, rows["prediction"])), 6
        )
    return found


def drift_report(store: Store, pipeline: str, *, now: datetime) -> dict[str, Any] | None:
    """The drift of each version that answered `pipeline`'s logged requests in its window;
    None when nothing was logged."""
    versions: dict[str, Any] = {}
    window = _window(store, pipeline)
    rows = recent_log(store, pipeline, since=now - timedelta(hours=window), until=now)
    if rows.empty:
        return None
    for version, part in rows.groupby("version"):
        number = int(version)
        record, baseline = _version(store, pipeline, number)
        threshold = float(
            (record.get("monitoring") or {}).get("drift_threshold", DEFAULT_THRESHOLD)
        )
        entry: dict[str, Any] = {"rows": len(part), "threshold": threshold}
        if baseline is None:
            entry["skipped"] = "the version has no reference (registered before drift was kept)"
        elif len(part) < MIN_ROWS:
            entry["skipped"] = f"{len(part)} rows logged in the window; {MIN_ROWS} are needed"
        else:
            found = version_drift(baseline, part)
            entry["drift"] = dict(sorted(found.items(), key=lambda kv: -kv[1]))
            entry["over"] = [name for name, value in entry["drift"].items() if value > threshold]
        versions[str(number)] = entry
    return {
        "pipeline": pipeline,
        "time": now.isoformat(),
        "window_hours": window,
        "versions": versions,
    }


def _window(store: Store, pipeline: str) -> float:
    from shared.registry import get_alias

    pointer = get_alias(store, pipeline)
    if pointer is None:
        return 24.0
    record, _ = _version(store, pipeline, int(pointer["version"]))
    return float((record.get("monitoring") or {}).get("window_hours", 24.0))


def _version(store: Store, pipeline: str, version: int) -> tuple[dict[str, Any], Any]:
    record = dict(store.get_json(version_key(pipeline, version)))
    try:
        baseline = store.get_json(version_key(pipeline, version, "reference.json"))
    except NotFound:
        baseline = None
    return record, baseline


def check_drift(
    store: Store, *, now: datetime | None = None, flagged: Flagged | None = None
) -> int:
    """Write a drift report for every pipeline with logged requests; call `flagged` for each
    feature over its threshold. Returns the number of reports written."""
    now = now or datetime.now(UTC)
    written = 0
    for pipeline in list_pipelines(store):
        report = drift_report(store, pipeline, now=now)
        if report is None:
            continue
        store.put_json(drift_key(pipeline, now.strftime("%Y%m%dT%H%M%S")), report)
        store.put_json(drift_key(pipeline, LATEST), report)
        written += 1
        for version, entry in report["versions"].items():
            for feature in entry.get("over", []):
                log.warning(
                    "drift: %s v%s %s at %.3f, over %g",
                    pipeline,
                    version,
                    feature,
                    entry["drift"][feature],
                    entry["threshold"],
                )
                if flagged is not None:
                    flagged(
                        pipeline, int(version), feature, entry["drift"][feature], entry["threshold"]
                    )
    return written


def start_monitoring(
    settings: Settings, stop: threading.Event, *, active: Callable[[], bool]
) -> threading.Thread:
    """Check drift every CAUCE_MONITOR_SECONDS on a daemon thread, while `active` (this watcher
    holds the lock) says so; drift over a threshold raises an alert."""

    def flagged(pipeline: str, version: int, feature: str, value: float, limit: float) -> None:
        drift_detected(
            settings.broker_url,
            pipeline=pipeline,
            version=version,
            feature=feature,
            value=value,
            threshold=limit,
        )

    def run() -> None:
        store = Store.from_settings(settings)
        while not stop.wait(settings.monitor_seconds):
            try:
                if active():
                    check_drift(store, flagged=flagged)
            except Exception:  # the next round tries again; scans and runs go on meanwhile
                log.exception("drift check failed")

    thread = threading.Thread(target=run, name="cauce-monitor", daemon=True)
    thread.start()
    return thread
