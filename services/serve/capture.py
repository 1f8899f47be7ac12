"""The prediction log: a sample of what the service was asked and what it answered, written to
the bucket as Parquet (one file per batch, under one prefix per pipeline and day) by a
background thread, so that drift and live metrics can be computed from it.

A request never waits on the store: a sampled record goes into a bounded queue with
`put_nowait`; when the queue is full (the store slow or away) the record is dropped and
counted. The thread writes whatever has waited for `flush_seconds` (or MAX_BATCH_ROWS rows); a
batch the store refuses is dropped and counted too, so memory stays bounded by the queue.
"""

from __future__ import annotations

import io
import logging
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.layout import prediction_log_key
from shared.storage import Store

log = logging.getLogger(__name__)

DEFAULT_SAMPLE = 0.1  # shared.spec.Monitoring.sample: for versions registered before it
MAX_BATCH_ROWS = 50_000  # rows written at once, whatever the time
INPUT = "input."  # the log's input columns are the signature's names behind this prefix
Counted = Callable[[str, str, int], None]  # (pipeline, outcome, rows)


@dataclass(frozen=True)
class Record:
    """One sampled request: the rows it sent and what the model answered."""

    pipeline: str
    version: int
    request_id: str
    time: float
    inputs: Mapping[str, list[Any]]
    predictions: list[Any]


def sample_rate(record: Mapping[str, Any]) -> float:
    """The share of requests a version's spec asks to log."""
    return float((record.get("monitoring") or {}).get("sample", DEFAULT_SAMPLE))


def _column(values: list[Any]) -> Any:
    """One Arrow column; values of several kinds across requests (a number sent as text once)
    are kept as text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if v is None else str(v) for v in values], type=pa.string())


def parquet(records: list[Record]) -> bytes:
    """The rows of `records` as Parquet: request id, time, version, row, inputs, prediction.

    pyarrow is imported here, on the writer thread's first batch: a service whose log is off
    never loads it (it and pandas hold most of a process's memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(dict.fromkeys(name for r in records for name in r.inputs))
    columns: dict[str, list[Any]] = {
        "request_id": [],
        "time": [],
        "version": [],
        "row": [],
        **{f"{INPUT}{name}": [] for name in names},
        "prediction": [],
    }
    for r in records:
        rows = len(r.predictions)
        columns["request_id"] += [r.request_id] * rows
        columns["time"] += [datetime.fromtimestamp(r.time, UTC)] * rows
        columns["version"] += [r.version] * rows
        columns["row"] += list(range(rows))
        for name in names:
            columns[f"{INPUT}{name}"] += list(r.inputs.get(name, [None] * rows))
        columns["prediction"] += list(r.predictions)
    table = pa.table({name: _column(values) for name, values in columns.items()})
    body = io.BytesIO()
    pq.write_table(table, body)
    return body.getvalue()


class PredictionLog:
    """The bounded queue the request path offers records to, and the thread that writes them."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int,
        flush_seconds: float,
        counted: Counted | None = None,
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.counted = counted or (lambda pipeline, outcome, rows: None)
        self._queue: queue.Queue[Record] = queue.Queue(maxsize=capacity)
        self._random = random.Random()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def offer(
        self,
        record: Mapping[str, Any],
        *,
        pipeline: str,
        version: int,
        request_id: str,
        inputs: Mapping[str, list[Any]],
        predictions: list[Any],
    ) -> None:
        """Log this request if the version's sample says so; never blocks."""
        rate = sample_rate(record)
        if rate <= 0 or (rate < 1 and self._random.random() >= rate):
            return
        item = Record(pipeline, version, request_id, time.time(), inputs, predictions)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.counted(pipeline, "dropped_queue_full", len(predictions))

    def start(self) -> None:
        """Write batches on a daemon thread from now on."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="cauce-prediction-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.flush(self._take(wait=self.flush_seconds))
        self.flush(self._take(wait=0))

    def _take(self, *, wait: float) -> list[Record]:
        """What arrives within `wait` seconds (at most MAX_BATCH_ROWS rows)."""
        taken: list[Record] = []
        rows, deadline = 0, time.monotonic() + wait
        while rows < MAX_BATCH_ROWS:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            taken.append(item)
            rows += len(item.predictions)
        return taken

    def flush(self, records: list[Record]) -> None:
        """Write `records`, one Parquet file per pipeline and day; count what the store refused."""
        groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
        for r in records:
            day = datetime.fromtimestamp(r.time, UTC).strftime("%Y-%m-%d")
            groups[(r.pipeline, day)].append(r)
        for (pipeline, day), batch in groups.items():
            rows = sum(len(r.predictions) for r in batch)
            try:
                name = f"{datetime.now(UTC).strftime('%H%M%S')}-{uuid.uuid4().hex[:12]}"
                self.store.put_bytes(prediction_log_key(pipeline, day, name), parquet(batch))
            except Exception as exc:  # the store away: the rows are dropped, never retried
                log.warning("prediction log: %s rows of %s dropped: %s", rows, pipeline, exc)
                self.counted(pipeline, "dropped_store_error", rows)
            else:
                self.counted(pipeline, "written", rows)
