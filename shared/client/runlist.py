"""Pages of runs, newest first, filtered by pipeline and state: the console's runs page and
`cauce runs` read only the page they show, however many runs the bucket holds."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from shared.client.listing import newest_ids
from shared.errors import NotFound
from shared.pipeline import STAGES
from shared.runs import describe_run, is_terminal, read_run, read_status
from shared.storage import Store

BATCH = 100  # run ids looked at per step while filtering
SCAN_BUDGET = 1000  # runs one filtered page request looks at before it answers with what it has
CACHE_SIZE = 50_000  # ended runs remembered, a few kB each


class RunCache:
    """What never changes once written: a run's pipeline, and the view of a run that has ended
    (a stage that succeeded or failed is never run again), so pages re-read only live runs."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.views: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.pipelines: dict[str, str] = {}
        self.deployed_ids: set[str] = set()

    def view(self, store: Store, run_id: str) -> dict[str, Any]:
        """The run's view, from memory if it had ended when last read."""
        with self.lock:
            if run_id in self.views:
                self.views.move_to_end(run_id)
                return self.views[run_id]
        view = describe_run(store, run_id)
        with self.lock:
            self.pipelines[run_id] = view["pipeline"]
            if is_terminal(view):
                self.views[run_id] = view
                while len(self.views) > self.size:
                    self.views.popitem(last=False)
        return view

    def deployed(self, store: Store, run_id: str) -> bool:
        """Whether the run's last stage succeeded, which settles the run (one small read)."""
        with self.lock:
            view = self.views.get(run_id)
            if run_id in self.deployed_ids:
                return True
        if view is not None:
            return bool(view["state"] == "succeeded")
        status = read_status(store, run_id, STAGES[-1]) or {}
        if status.get("state") != "succeeded":
            return False
        with self.lock:
            if len(self.deployed_ids) > self.size * 4:
                self.deployed_ids.clear()
            self.deployed_ids.add(run_id)
        return True

    def pipeline(self, store: Store, run_id: str) -> str:
        """The run's pipeline (`run.json` is written once)."""
        with self.lock:
            known = self.pipelines.get(run_id)
        if known is None:
            known = str(read_run(store, run_id)["pipeline"])
            with self.lock:
                if len(self.pipelines) > self.size * 4:
                    self.pipelines.clear()
                self.pipelines[run_id] = known
        return known


@dataclass
class RunPage:
    """A page of runs, the cursor of the next (older) page, and how many runs were looked at."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    next_before: str | None = None
    scanned: int = 0

    def as_json(self) -> dict[str, Any]:
        """The page as the JSON API returns it."""
        return {"runs": self.runs, "next_before": self.next_before, "scanned": self.scanned}


def _maybe(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """`fn`, answering None for a run whose `run.json` is missing."""

    def call(run_id: str) -> Any:
        try:
            return fn(run_id)
        except NotFound:
            return None  # a run being created right now, or removed by hand

    return call


@dataclass
class Reader:
    """Reads runs for the pages: in parallel, through the cache of what cannot change."""

    store: Store
    pool: Executor
    cache: RunCache

    def views(self, run_ids: list[str]) -> list[dict[str, Any] | None]:
        """Every run's view; None for a run without its `run.json`."""
        return list(self.pool.map(_maybe(lambda r: self.cache.view(self.store, r)), run_ids))

    def unfinished(self, run_ids: list[str]) -> list[str]:
        """The ids among `run_ids` whose last stage has not succeeded: the only ones that can be
        failed, running or queued (most runs succeed, and this costs one read instead of six)."""
        done = self.pool.map(_maybe(lambda r: self.cache.deployed(self.store, r)), run_ids)
        return [r for r, deployed in zip(run_ids, done, strict=True) if not deployed]

    def of_pipeline(self, run_ids: list[str], pipeline: str) -> list[str]:
        """The ids among `run_ids` whose run belongs to `pipeline`."""
        names = self.pool.map(_maybe(lambda r: self.cache.pipeline(self.store, r)), run_ids)
        return [r for r, name in zip(run_ids, names, strict=True) if name == pipeline]


def runs_page(
    reader: Reader,
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
        batch = newest_ids(reader.store, before=cursor, count=BATCH if filtered else limit)
        if not batch:
            return page  # no older runs: no next page
        cursor = batch[-1]
        page.scanned += len(batch)
        wanted = reader.of_pipeline(batch, pipeline) if pipeline else batch
        if state is not None and state != "succeeded":
            wanted = reader.unfinished(wanted)
        for view in reader.views(wanted):
            if view is not None and (state is None or view["state"] == state):
                page.runs.append(view)
            if len(page.runs) == limit:
                page.next_before = view["run_id"] if view else cursor
                return page
    page.next_before = cursor
    return page
