"""Successive halving on big tables: trials on row subsamples first, the best on more rows.

A search over at least HALVING_MIN_ROWS training rows runs asynchronous successive halving
(ASHA, as in Ray Tune and Optuna's SuccessiveHalvingPruner): rungs of ETA times more rows each,
the last one all of them. Each trial decides as it starts: if a rung has a finished trial in its
top 1/ETA that no trial took on yet, it fits that configuration on the next rung's rows (the
claim is a conditional put, so two trials never take the same one); otherwise it starts a new
configuration on the first rung. Selection takes the best trial of the highest rung reached, and
refits it on every training row when that rung is not the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

HALVING_MIN_ROWS = 200_000  # training rows from which `halving: auto` subsamples
MIN_RUNG_ROWS = 50_000  # the fewest rows a first rung fits on
ETA = 3  # each rung keeps the best third, on three times the rows
MAX_RUNGS = 3


def rungs(train_rows: int) -> list[int | None]:
    """The rows each rung fits on (None: every training row), first rung first."""
    steps = min(MAX_RUNGS - 1, int(math.log(max(train_rows, 1) / MIN_RUNG_ROWS, ETA)))
    return [int(train_rows / ETA ** (steps - rung)) for rung in range(steps)] + [None]


def slots(per_candidate: int, rung_count: int) -> int:
    """Trials to plan per candidate so that `per_candidate` configurations start on the first
    rung and their best can climb every rung."""
    return per_candidate + sum(
        math.ceil(per_candidate / ETA**rung) for rung in range(1, rung_count)
    )


def promotable(
    seen: Sequence[dict[str, Any]], rung_rows: Sequence[int | None], *, greater_is_better: bool
) -> list[tuple[int, dict[str, Any]]]:
    """The (next rung, trial) pairs that may climb, highest rung first: each rung's succeeded
    trials in its top 1/ETA (of those finished so far), best first."""
    out: list[tuple[int, dict[str, Any]]] = []
    for rung in reversed(range(len(rung_rows) - 1)):
        done = [t for t in seen if t.get("rung", 0) == rung and t.get("state") == "succeeded"]
        done.sort(key=lambda t: t["score"], reverse=greater_is_better)
        out.extend((rung + 1, t) for t in done[: len(done) // ETA])
    return out


def climb(
    seen: Sequence[dict[str, Any]],
    rung_rows: Sequence[int | None],
    *,
    greater_is_better: bool,
    claim: Callable[[int], bool],
) -> dict[str, Any] | None:
    """The configuration this trial takes to a higher rung (`claim(index)` must win it), or None
    when no trial is due to climb and the trial starts a new configuration."""
    for rung, trial in promotable(seen, rung_rows, greater_is_better=greater_is_better):
        if claim(trial["index"]):
            return {
                "estimator": trial["estimator"],
                "params": trial["params"],
                "rung": rung,
                "rows": rung_rows[rung],
                "promoted_from": trial["index"],
            }
    return None
