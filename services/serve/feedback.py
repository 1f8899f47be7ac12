"""Ground truth sent to the prediction service: `POST /v2/models/<pipeline>/feedback` names
logged requests (and their rows) with the true label or value. A body is checked here and
stored as JSON lines under feedback/<pipeline>/<day>/, where the watcher's live-metric check
(services/watcher/live.py) joins it with the prediction log.

The body: `{"feedback": [{"request_id": "r1", "row": 0, "label": "yes"},
{"request_id": "r2", "labels": ["no", "yes"]}]}`. `row` defaults to 0 (the first row of the
request); `labels` gives one label per row of the request, rows 0, 1, ... in order.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.columns import shown
from shared.errors import RequestError
from shared.layout import feedback_key
from shared.storage import Store

MAX_ROWS = 100_000  # labelled rows in one body, as for the rows of a prediction request
MAX_ID = 1024  # characters of a request id (the service's own are 32; a client's v2 id is free)
FIELDS = ("request_id", "row", "label", "labels")
SHAPE = '{"feedback": [{"request_id": "...", "row": 0, "label": ...}, ...]}'


def parse_feedback(body: Any, *, task: str) -> list[dict[str, Any]]:
    """One {request_id, row, label} per labelled row of a feedback body; a RequestError naming
    the field when the body is wrong."""
    if not isinstance(body, dict) or "feedback" not in body:
        raise RequestError(f"the body must be JSON shaped {SHAPE}", field="feedback")
    items = body["feedback"]
    if not isinstance(items, list) or not items:
        raise RequestError(
            f"feedback must be a list of at least one request id with its label: {SHAPE}",
            field="feedback",
        )
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        rows += _item(item, f"feedback[{index}]", task)
        if len(rows) > MAX_ROWS:
            raise RequestError(
                f"feedback labels more than {MAX_ROWS} rows; send them in several requests",
                field="feedback",
                status=413,
            )
    return rows


def _item(item: Any, where: str, task: str) -> list[dict[str, Any]]:
    """The labelled rows of one entry of the list."""
    if not isinstance(item, dict):
        raise RequestError(f"{where} must be an object with request_id and label", field=where)
    for name in item:
        if name not in FIELDS:
            raise RequestError(
                f"{where} has an unknown field {shown(name)}; use {', '.join(FIELDS)}",
                field=f"{where}.{str(name)[:80]}",
            )
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID:
        raise RequestError(
            f"{where}.request_id must be the request's id (X-Request-Id of its answer), a string "
            f"of 1 to {MAX_ID} characters, not {shown(request_id)}",
            field=f"{where}.request_id",
        )
    if ("label" in item) == ("labels" in item):
        raise RequestError(
            f"{where} needs either label (one row) or labels (one per row of the request)",
            field=f"{where}.label",
        )
    if "labels" in item:
        return _labels(item, where, request_id, task)
    row = item.get("row", 0)
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise RequestError(
            f"{where}.row must be the row's index in its request (0 or more), not {shown(row)}",
            field=f"{where}.row",
        )
    label = _label(item["label"], f"{where}.label", task)
    return [{"request_id": request_id, "row": row, "label": label}]


def _labels(item: dict[str, Any], where: str, request_id: str, task: str) -> list[dict[str, Any]]:
    """The rows of an entry that labels every row of its request."""
    if "row" in item:
        raise RequestError(
            f"{where} gives labels for rows 0, 1, ... in order: leave row out, or give one label",
            field=f"{where}.row",
        )
    labels = item["labels"]
    if not isinstance(labels, list) or not labels:
        raise RequestError(
            f"{where}.labels must be a list of one label per row of the request",
            field=f"{where}.labels",
        )
    return [
        {"request_id": request_id, "row": row, "label": _label(v, f"{where}.labels[{row}]", task)}
        for row, v in enumerate(labels)
    ]


def _label(value: Any, where: str, task: str) -> Any:
    """A true value (regression: a finite number) or class (text, a number or a boolean)."""
    if task == "regression":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise RequestError(
                f"{where} must be the true value, a number, not {shown(value)}", field=where
            )
        return value
    if isinstance(value, str | int | float | bool) and value != "":
        return value
    raise RequestError(
        f"{where} must be the true class (text, a number or a boolean), not {shown(value)}",
        field=where,
    )


def store_feedback(
    store: Store, pipeline: str, rows: list[dict[str, Any]], *, now: datetime | None = None
) -> str:
    """Write `rows`, stamped with the time received, as one JSON-lines object; return its key."""
    now = now or datetime.now(UTC)
    stamp = now.isoformat()
    text = "".join(json.dumps({**row, "time": stamp}) + "\n" for row in rows)
    name = f"{now.strftime('%H%M%S')}-{uuid.uuid4().hex[:12]}"
    key = feedback_key(pipeline, now.strftime("%Y-%m-%d"), name)
    store.put_bytes(key, text.encode(), content_type="application/x-ndjson")
    return key
