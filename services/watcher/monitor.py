"""Drift of served inputs: every CAUCE_MONITOR_SECONDS the active watcher compares each
pipeline's recently logged requests (services/serve/capture.py) with the training data of the
version that answered them (its reference.json, written at deploy), and writes a report.

The window is the version's `monitoring.window_hours`; a feature whose population stability
index passes `monitoring.drift_threshold` is flagged in the report and raised as an alert.
Versions with fewer than MIN_ROWS logged rows in the window are reported without an index.
The same thread checks the live metrics from ground truth (services/watcher/live.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from services.watcher.live import check_live_metrics
from services.watcher.served import recent_log, version_record, window_hours
from shared.alerts import drift_detected, metric_below_threshold
from shared.config import Settings
from shared.drift import DEFAULT_THRESHOLD, feature_drift, psi, shares
from shared.errors import NotFound
from shared.layout import LATEST, drift_key, version_key
from shared.registry import list_pipelines
from shared.storage import Store

log = logging.getLogger(__name__)

MIN_ROWS = 50  # fewer logged rows than this give shares too coarse to compare
INPUT = "input."  # the log's input columns (services/serve/capture.py)
Flagged = Callable[[str, int, str, float, float], None]  # pipeline, version, feature, value, limit


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
    window = window_hours(store, pipeline)
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


def _version(store: Store, pipeline: str, version: int) -> tuple[dict[str, Any], Any]:
    record = version_record(store, pipeline, version)
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
    """Check drift and live metrics every CAUCE_MONITOR_SECONDS on a daemon thread, while
    `active` (this watcher holds the lock) says so; drift over a threshold, or a live metric
    worse than one, raises an alert."""

    def flagged(pipeline: str, version: int, feature: str, value: float, limit: float) -> None:
        drift_detected(
            settings.broker_url,
            pipeline=pipeline,
            version=version,
            feature=feature,
            value=value,
            threshold=limit,
        )

    def below(
        pipeline: str, version: int, metric: str, value: float, limit: float, details: dict
    ) -> None:
        metric_below_threshold(
            settings.broker_url,
            pipeline=pipeline,
            version=version,
            metric=metric,
            value=value,
            threshold=limit,
            details=details,
        )

    checks: list[tuple[str, Callable[[Store], int]]] = [
        ("drift", lambda store: check_drift(store, flagged=flagged)),
        ("live metrics", lambda store: check_live_metrics(store, flagged=below)),
    ]

    def run() -> None:
        store = Store.from_settings(settings)
        while not stop.wait(settings.monitor_seconds):
            for name, check in checks:
                try:
                    if active():
                        check(store)
                except Exception:  # the next round tries again; scans and runs go on meanwhile
                    log.exception("%s check failed", name)

    thread = threading.Thread(target=run, name="cauce-monitor", daemon=True)
    thread.start()
    return thread
