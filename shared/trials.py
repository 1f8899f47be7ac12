"""Train's tuning trials in the bucket, and the rule for which trial is due next.

The plan starts the first `parallelism` trials; when trial `i` ends (with a result) it sends
trial `i + parallelism`, so at most `parallelism` chains run at once. Train follows this rule and
recovery checks it: both read it here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from shared.errors import NotFound
from shared.layout import stage_key, trials_prefix
from shared.storage import ObjectInfo, Store


class TrialTimes(NamedTuple):
    """When each trial's result and heartbeat were last written (epoch seconds by the store's
    clock, by index)."""

    results: dict[int, float]
    beats: dict[int, float]


def trial_objects(store: Store, run_id: str) -> Iterator[tuple[int, str, ObjectInfo]]:
    """The run's trial files as (trial index, suffix, object): `json`, `heartbeat`, `params`..."""
    prefix = trials_prefix(run_id)
    for item in store.list_objects(prefix):
        index, _, suffix = item.key[len(prefix) :].partition(".")
        if index.isdigit():
            yield int(index), suffix, item


def trial_times(store: Store, run_id: str) -> TrialTimes:
    """The run's trial results and heartbeats, each with the time it was last written."""
    times = TrialTimes({}, {})
    for index, suffix, item in trial_objects(store, run_id):
        target = {"json": times.results, "heartbeat": times.beats}.get(suffix)
        if target is not None:
            target[index] = datetime.fromisoformat(item.modified).timestamp()
    return times


def finished_trials(store: Store, run_id: str) -> list[int]:
    """The indexes of the run's trials that have a result."""
    return sorted(trial_times(store, run_id).results)


def next_trial(index: int, *, parallelism: int, count: int) -> int | None:
    """The trial that trial `index` sends when it ends, or None when its chain is done."""
    following = index + parallelism
    return following if following < count else None


def due_trials(finished: Collection[int], *, parallelism: int, count: int) -> list[int]:
    """The trials without a result whose turn has come: the first ones, and those whose
    sender has finished."""
    return [
        index
        for index in range(count)
        if index not in finished and (index < parallelism or index - parallelism in finished)
    ]


def last_sign(times: TrialTimes, index: int, *, parallelism: int, planned: float) -> float:
    """When a due trial last showed life: its heartbeat, else its sender's result, else the plan."""
    sender = times.results.get(index - parallelism) if index >= parallelism else None
    return times.beats.get(index) or sender or planned


def search_progress(store: Store, run_id: str) -> dict[str, Any] | None:
    """A running search as users follow it: trials done of planned, the budget, the seconds
    used since the plan and an estimate of what is left (None before the plan is written)."""
    try:
        plan = store.head(stage_key(run_id, "train", "plan.json"))
        search = store.get_json(plan.key)
    except NotFound:
        return None
    planned, budget = len(search["trials"]), search.get("budget_seconds")
    done = len(trial_times(store, run_id).results)
    used = max(0.0, store.server_time() - datetime.fromisoformat(plan.modified).timestamp())
    # At the pace so far, capped by the budget (what is not done by then is stopped or skipped);
    # a search that runs until its budget is spent ends with it.
    until_budget = bool(search.get("until_budget"))
    left = used / done * (planned - done) if done and not until_budget else None
    if budget is not None:
        room = max(0.0, budget - used)
        left = room if left is None else min(left, room)
    return {
        "trials_done": done,
        "trials_planned": planned,
        "until_budget": until_budget,
        "budget_seconds": budget,
        "used_seconds": round(used, 1),
        "left_seconds": None if left is None else round(left, 1),
    }
