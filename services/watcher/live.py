"""Live metrics: every CAUCE_MONITOR_SECONDS the active watcher joins each pipeline's ground truth
(feedback/<pipeline>/: batches posted to the prediction service, CSV files dropped there) with
its prediction log on (request_id, row), scores each version's answers against it with the
metrics evaluate uses, and writes a report beside that version's test-split metrics.

Both the logged answer and its label fall in the production version's `monitoring.window_hours`:
a label comes after its answer, so only feedback written since the window began is read. A row
labelled twice counts once, with its latest label. ROC AUC and log loss are reported as not
available: the log keeps each answer, not its probabilities. A version whose live value of its
spec's metric is worse than `monitoring.live_threshold`, over at least MIN_ROWS labelled rows,
is flagged in the report and raised as `metric.below_threshold`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from services.watcher.served import monitoring_of, recent_log, version_record, window_hours
from services.watcher.truth import live_scores, read_feedback, split_metrics
from shared.errors import NotFound
from shared.layout import LATEST, live_key
from shared.registry import list_pipelines
from shared.scoring import get_metric, is_better
from shared.storage import Store

log = logging.getLogger(__name__)

MIN_ROWS = 20  # fewer labelled rows than this are reported, never alerted on
KEYS = ["request_id", "row"]
# pipeline, version, metric, live value, threshold, details (rows, test value)
LiveFlagged = Callable[[str, int, str, float, float, dict[str, Any]], None]


def labelled_rows(
    store: Store, pipeline: str, *, since: datetime, until: datetime
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    """The logged rows of the window that have a label, the feedback read, and the files skipped."""
    truth, skipped = read_feedback(store, pipeline, since=since)
    if truth.empty:
        return pd.DataFrame(), truth, skipped
    rows = recent_log(store, pipeline, since=since, until=until)
    if rows.empty:
        return rows, truth, skipped
    rows = rows.sort_values("time", kind="stable").drop_duplicates(KEYS, keep="last")
    rows = rows.astype({"request_id": str, "row": "int64"})
    joined = rows.merge(truth[[*KEYS, "label"]], on=KEYS, how="inner")
    return joined, truth, skipped


def version_entry(record: dict[str, Any], part: pd.DataFrame) -> dict[str, Any]:
    """One version's live metrics on its labelled rows, its test metrics, and the verdict."""
    metric = str(record.get("metric") or "")
    threshold = monitoring_of(record).get("live_threshold")
    live, unavailable = live_scores(record, part["label"].tolist(), part["prediction"].tolist())
    entry: dict[str, Any] = {
        "rows": int(live.pop("rows")),
        "metric": metric,
        "threshold": threshold,
        "live": live,
        "test": split_metrics(record),
        "unavailable": unavailable,
        "below": False,
    }
    value = live.get(metric)
    if threshold is None or value is None:
        return entry
    if entry["rows"] < MIN_ROWS:
        entry["note"] = (
            f"{entry['rows']} labelled rows; {MIN_ROWS} are needed to check the threshold"
        )
    else:
        entry["below"] = is_better(metric, float(threshold), float(value))
    return entry


def live_report(store: Store, pipeline: str, *, now: datetime) -> dict[str, Any] | None:
    """The live metrics of each version whose logged answers got labels in the window; None when
    no feedback came in it."""
    window = window_hours(store, pipeline)
    joined, truth, skipped = labelled_rows(
        store, pipeline, since=now - timedelta(hours=window), until=now
    )
    if truth.empty and not skipped:
        return None
    versions: dict[str, Any] = {}
    groups = joined.groupby("version") if not joined.empty else []
    for version, part in groups:
        try:
            record = version_record(store, pipeline, int(version))
        except NotFound:
            versions[str(version)] = {"rows": len(part), "skipped": "the version is not registered"}
            continue
        versions[str(version)] = version_entry(record, part)
    return {
        "pipeline": pipeline,
        "time": now.isoformat(),
        "window_hours": window,
        "feedback_rows": len(truth),
        "matched_rows": len(joined),
        "skipped_files": skipped,
        "versions": versions,
    }


def check_live_metrics(
    store: Store, *, now: datetime | None = None, flagged: LiveFlagged | None = None
) -> int:
    """Write a live-metric report for every pipeline with feedback in its window; call `flagged`
    for each version below its threshold. Returns the number of reports written."""
    now = now or datetime.now(UTC)
    written = 0
    for pipeline in list_pipelines(store):
        report = live_report(store, pipeline, now=now)
        if report is None:
            continue
        store.put_json(live_key(pipeline, now.strftime("%Y%m%dT%H%M%S")), report)
        store.put_json(live_key(pipeline, LATEST), report)
        written += 1
        for version, entry in report["versions"].items():
            if not entry.get("below"):
                continue
            metric, value = entry["metric"], entry["live"][entry["metric"]]
            direction = "higher" if get_metric(metric).greater_is_better else "lower"
            log.warning(
                "live metric: %s v%s %s at %.4f on %s rows, threshold %g (%s is better)",
                pipeline,
                version,
                metric,
                value,
                entry["rows"],
                entry["threshold"],
                direction,
            )
            if flagged is not None:
                details = {"rows": entry["rows"], "test": entry["test"].get(metric)}
                flagged(pipeline, int(version), metric, value, float(entry["threshold"]), details)
    return written
