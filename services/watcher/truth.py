"""Ground truth as the live-metric check reads it: the batches the prediction service stored
(services/serve/feedback.py, JSON lines) and CSV files dropped under feedback/<pipeline>/
(columns request_id, label and optionally row, 0 when absent), and the scores of logged answers
against it, computed as evaluate computes them (shared/scoring.py)."""

from __future__ import annotations

import io
import json
import math
import warnings
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from shared.layout import feedback_prefix
from shared.scoring import get_metric, metrics_for, score
from shared.storage import Store

COLUMNS = ["request_id", "row", "label", "time"]
UNAVAILABLE = "needs predicted probabilities, which the prediction log does not keep"


def posted_labels(data: bytes) -> pd.DataFrame:
    """A batch the prediction service stored: one JSON object a line."""
    rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def csv_labels(data: bytes, modified: datetime) -> pd.DataFrame:
    """A dropped CSV file; its rows take the time the store wrote it."""
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the file has no column {', '.join(missing)}: it needs request_id and label "
            f"(row optional); its columns are {', '.join(map(str, frame.columns))}"
        )
    text = frame["row"].str.strip() if "row" in frame else pd.Series("0", index=frame.index)
    rows = pd.to_numeric(text.replace("", "0"), errors="coerce")
    if rows.isna().any() or (rows < 0).any() or (rows % 1 != 0).any():
        bad = text[rows.isna() | (rows < 0) | (rows % 1 != 0)].iloc[0]
        raise ValueError(f"row must be a row index (0 or more), not {bad!r}")
    frame = frame[frame["label"].str.strip() != ""]
    return pd.DataFrame(
        {
            "request_id": frame["request_id"].str.strip(),
            "row": rows.loc[frame.index].astype("int64"),
            "label": frame["label"].str.strip(),
            "time": pd.Timestamp(modified),
        },
        columns=COLUMNS,
    )


def read_feedback(
    store: Store, pipeline: str, *, since: datetime
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Every label of `pipeline` written since `since`, the latest per (request_id, row), and the
    files that could not be read, with why."""
    frames, skipped = [], []
    for item in store.list_objects(feedback_prefix(pipeline)):
        modified = datetime.fromisoformat(item.modified)
        if modified < since:
            continue
        name = item.key.rsplit("/", 1)[-1]
        if name.startswith(".") or not name.endswith((".jsonl", ".csv")):
            continue
        try:
            data = store.get_bytes(item.key)
            posted = name.endswith(".jsonl")
            frames.append(posted_labels(data) if posted else csv_labels(data, modified))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            skipped.append({"key": item.key, "reason": str(exc)[:500]})
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=COLUMNS), skipped
    truth = pd.concat(frames, ignore_index=True).astype({"request_id": str, "row": "int64"})
    truth = truth.sort_values("time", kind="stable").drop_duplicates(
        ["request_id", "row"], keep="last"
    )
    return truth.reset_index(drop=True), skipped


def text(value: Any) -> str:
    """A class as text, so that 1, 1.0 and "1" (JSON, Parquet and CSV) name the same class."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _codes(values: list[str], labels: list[str], *, unknown: int) -> np.ndarray:
    """Each value's position in `labels` (`unknown` for a value not among them), as evaluate."""
    position = {label: index for index, label in enumerate(labels)}
    return np.asarray([position.get(value, unknown) for value in values], dtype=np.int64)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def live_scores(
    record: dict[str, Any], labels: list[Any], predictions: list[Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The version's task metrics of `predictions` against `labels` (with "rows", the rows
    scored), and the metrics not available with why."""
    task = str(record.get("task", "regression"))
    names = metrics_for(task)
    unavailable = {n: UNAVAILABLE for n in names if get_metric(n).needs_proba}
    inputs: dict[str, Any]
    if task == "classification":
        true, pred = [text(v) for v in labels], [text(v) for v in predictions]
        classes = [text(c) for c in record.get("classes") or []] or sorted({*true, *pred})
        codes = list(range(len(classes)))
        # Unknown classes get codes no other has: a true class the model does not know is a miss.
        inputs = {
            "y_true": _codes(true, classes, unknown=-1),
            "y_pred": _codes(pred, classes, unknown=-2),
            "classes": codes,
        }
    else:
        true_values = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce")
        pred_values = pd.to_numeric(pd.Series(predictions, dtype=object), errors="coerce")
        kept = true_values.notna() & pred_values.notna()
        inputs = {"y_true": true_values[kept].to_numpy(), "y_pred": pred_values[kept].to_numpy()}
    rows = len(inputs["y_true"])
    result: dict[str, Any] = {"rows": rows}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # r2 of one row, a class never seen: None, not noise
        for name in names:
            usable = rows > 0 and name not in unavailable
            result[name] = _finite(score(name, **inputs)) if usable else None
    return result, unavailable


def split_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The version's test-split metrics of its task, as evaluate recorded them."""
    metrics = record.get("metrics") or {}
    return {name: metrics.get(name) for name in metrics_for(str(record.get("task", "regression")))}
