"""The search's time budget: its default, how much of it is left, and stopping a trial at it.

The budget counts from the plan (its `plan.json` in the bucket) to the start of each trial, both
read as the store's times, so that workers whose clocks disagree agree on it. A trial is given
what is left as its own limit, and one that reaches it is stopped and recorded as stopped; a
trial whose turn comes after the budget is used up is recorded as skipped. The first trial always
runs to its end, so a search always has a model to choose.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import Any

from shared.context import StageContext
from shared.layout import trial_key

# The default budget: a minute, and a minute more for each 100,000 training rows, at most an hour.
BASE_SECONDS = 60.0
ROWS_PER_MINUTE = 100_000
MAX_DEFAULT_SECONDS = 3600.0


def default_budget(train_rows: int) -> float:
    """The budget of a search whose spec gives none, for this many training rows."""
    return min(MAX_DEFAULT_SECONDS, BASE_SECONDS + 60.0 * max(0, train_rows) / ROWS_PER_MINUTE)


def seconds_left(ctx: StageContext, index: int, budget: float) -> float:
    """The budget left as trial `index` starts: the plan's time and the trial's attempt record
    (written just before), both as the store saw them."""
    planned = ctx.store.head(ctx.key("plan.json")).modified
    started = ctx.store.head(trial_key(ctx.run_id, index, "attempts")).modified
    used = (datetime.fromisoformat(started) - datetime.fromisoformat(planned)).total_seconds()
    return budget - used


class TrialStopped(BaseException):
    """Raised in a trial that reached its time limit (a BaseException, so that no library's
    `except Exception` around a fit swallows it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TrialStopped in this thread after `seconds` (None: no limit). A pool process runs its
    task in its main thread, where the alarm can interrupt a fit between two of its Python steps
    (a boosting iteration, a tree)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> Any:
        raise TrialStopped(f"stopped at the search's time limit after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
