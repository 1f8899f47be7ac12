"""The drift page's data: a pipeline's drift reports (services/watcher/monitor.py) as one
version's index per feature over time, the worst feature first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup

from services.console import svg
from shared.layout import LATEST, drift_key, drift_prefix
from shared.storage import Store

REPORTS = 48  # the newest reports read for the page
LINES = 5  # the worst features drawn over time


def drift_reports(store: Store, pipeline: str, *, limit: int = REPORTS) -> list[dict[str, Any]]:
    """The newest `limit` drift reports of `pipeline`, oldest first."""
    keys = [
        item.key
        for item in store.list_objects(drift_prefix(pipeline))
        if item.key != drift_key(pipeline, LATEST)
    ]
    return [dict(store.get_json(key)) for key in keys[-limit:]]


def drift_view(reports: list[dict[str, Any]], version: int | None) -> dict[str, Any]:
    """For `version` (else the newest that has figures): each feature's latest index, worst
    first, whether it is over the threshold, and a chart of the worst over time."""
    measured = [
        (r, r["versions"][str(v)])
        for r in reports
        for v in ([version] if version is not None else sorted(map(int, r["versions"])))
        if "drift" in r["versions"].get(str(v), {})
    ]
    if version is None and measured:
        newest = reports[-1]["versions"]
        version = max((int(v) for v, e in newest.items() if "drift" in e), default=None)
        measured = [
            (r, r["versions"][str(version)])
            for r in reports
            if "drift" in r["versions"].get(str(version), {})
        ]
    if not measured:
        return {"version": version, "rows": [], "chart": None, "report": None}
    report, entry = measured[-1]
    rows = [
        {"feature": name, "value": value, "over": value > entry["threshold"]}
        for name, value in entry["drift"].items()
    ]
    return {
        "version": version,
        "report": {
            "time": report["time"],
            "rows": entry["rows"],
            "threshold": entry["threshold"],
            "window_hours": report.get("window_hours"),
        },
        "rows": rows,
        "chart": _chart(measured, [r["feature"] for r in rows[:LINES]], entry["threshold"]),
    }


def _chart(measured: list[tuple[dict, dict]], features: list[str], threshold: float) -> Markup:
    newest = datetime.fromisoformat(measured[-1][0]["time"])
    seconds = [(datetime.fromisoformat(r["time"]) - newest).total_seconds() for r, _ in measured]
    series = [
        {
            "legend": name,
            "x": [t for t, (_, e) in zip(seconds, measured, strict=True) if name in e["drift"]],
            "y": [e["drift"][name] for _, e in measured if name in e["drift"]],
        }
        for name in features
    ]
    return svg.lines_over_time(
        series, title="Drift of the worst features", y_label="stability index", threshold=threshold
    )
