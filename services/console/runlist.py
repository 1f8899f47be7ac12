"""The runs page's data: one page of run views, newest first, filtered by pipeline and state."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from services.console.listing import newest_ids
from shared.errors import NotFound
from shared.runs import describe_run, read_run
from shared.storage import Store

BATCH = 100  # run ids looked at per step while filtering
SCAN_BUDGET = 1000  # runs one filtered page request looks at before it answers with what it has
STATES = ("queued", "running", "succeeded", "failed")


@dataclass
class RunPage:
    """A page of runs, the cursor of the next (older) page, and how many runs were looked at."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    next_before: str | None = None
    scanned: int = 0

    def as_json(self) -> dict[str, Any]:
        """The page as the JSON API returns it."""
        return {"runs": self.runs, "next_before": self.next_before, "scanned": self.scanned}


def _maybe(fn: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any] | None]:
    def call(run_id: str) -> dict[str, Any] | None:
        try:
            return fn(run_id)
        except NotFound:
            return None  # a run being created right now, or removed by hand

    return call


def describe_many(store: Store, pool: Executor, run_ids: list[str]) -> list[dict[str, Any] | None]:
    """Every run's view, read in parallel; None for a run without its `run.json`."""
    return list(pool.map(_maybe(lambda run_id: describe_run(store, run_id)), run_ids))


def _of_pipeline(store: Store, pool: Executor, run_ids: list[str], pipeline: str) -> list[str]:
    """The ids among `run_ids` whose run belongs to `pipeline` (one small read each)."""
    records = pool.map(_maybe(lambda run_id: read_run(store, run_id)), run_ids)
    return [
        run_id
        for run_id, record in zip(run_ids, records, strict=True)
        if record is not None and record.get("pipeline") == pipeline
    ]


def runs_page(
    store: Store,
    pool: Executor,
    *,
    before: str | None = None,
    limit: int = 25,
    pipeline: str | None = None,
    state: str | None = None,
) -> RunPage:
    """One page of runs older than `before`, newest first; a filtered page may come back short
    (with a cursor to go on from) after looking at SCAN_BUDGET runs."""
    page = RunPage()
    cursor = before
    filtered = pipeline is not None or state is not None
    while page.scanned < SCAN_BUDGET:
        batch = newest_ids(store, before=cursor, count=BATCH if filtered else limit)
        if not batch:
            return page  # no older runs: no next page
        cursor = batch[-1]
        page.scanned += len(batch)
        wanted = _of_pipeline(store, pool, batch, pipeline) if pipeline else batch
        for view in describe_many(store, pool, wanted):
            if view is not None and (state is None or view["state"] == state):
                page.runs.append(view)
            if len(page.runs) == limit:
                page.next_before = view["run_id"] if view else cursor
                return page
    page.next_before = cursor
    return page
