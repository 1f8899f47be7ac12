"""Drop-to-served seconds for the demo dataset, per stage, with events and with polling only:
`make bench` (`python -m bench.loop [--mode events|polling|both] [--repeat N]`).

For each mode, starts a local stack in a temporary CAUCE_HOME on free ports, drops
examples/churn.csv through S3 under a new pipeline name each repetition (so every run deploys and
is served), and reports the median of: the watcher's pickup, each stage's own seconds, the queue
hand-offs between stages, the prediction service's pickup, and the whole drop-to-served time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import requests

from bench.stack import local_stack, machine
from services.console.actions import roll_back
from shared.config import Settings
from shared.layout import drop_key
from shared.pipeline import STAGES
from shared.registry import get_alias
from shared.runs import describe_run, is_terminal, read_run
from shared.storage import Store

DATA = Path(__file__).resolve().parent.parent / "examples" / "churn.csv"


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def finished_run(
    store: Store, key: str, *, force: bool = False, cache: bool = True
) -> tuple[float, dict]:
    """Drop the file at `key` (as `cauce submit --force/--no-cache` would if asked); the drop
    time and the run once it has ended."""
    dropped = time.time()
    options = {"cauce-force": str(force).lower(), "cauce-cache": str(cache).lower()}
    store.put_bytes(key, DATA.read_bytes(), metadata=options)
    run_id = None
    while run_id is None:
        run_id = next(
            (
                r
                for r in sorted(store.children("runs/"), reverse=True)
                if read_run(store, r)["source"]["key"] == key
                and _ts(read_run(store, r)["created"]) >= dropped - 1
            ),
            None,
        )
        time.sleep(0.05)
    view = describe_run(store, run_id)
    while not is_terminal(view):
        time.sleep(0.05)
        view = describe_run(store, run_id)
    assert view["state"] == "succeeded", view["error"]
    return dropped, view


def cached_versus_uncached(store: Store, pipeline: str) -> tuple[float, float]:
    """Seconds from drop to the run's end: a run with --no-cache that computes every stage, and
    the same data dropped again with --force, whose preprocess and train come from the cache."""
    key = drop_key(pipeline, "churn.csv")
    seconds = []
    for force, cache in ((True, False), (True, True)):
        dropped, view = finished_run(store, key, force=force, cache=cache)
        seconds.append(_ts(view["stages"][-1]["finished"]) - dropped)
    assert view["stages"][2]["cached_from"], "the second run was not served from the cache"
    return seconds[0], seconds[1]


def first_answer(serve_url: str, pipeline: str, version: str | None = None) -> float:
    """When `GET /v2/models/<pipeline>` first answers (naming `version`, if given), as a client
    asking every 20 ms over fresh connections sees it; then 10 answers in a row must agree."""
    agreed, first = 0, 0.0
    while agreed < 10:
        response = requests.get(
            f"{serve_url}/v2/models/{pipeline}", headers={"Connection": "close"}, timeout=5
        )
        ok = response.ok and (version is None or response.json()["versions"] == [version])
        first, agreed = (first or time.time(), agreed + 1) if ok else (0.0, 0)
        time.sleep(0.02)
    return first


def measure_once(store: Store, serve_url: str, pipeline: str) -> dict[str, float]:
    """Drop the file once and time every step until the model answers."""
    with ThreadPoolExecutor(1) as client:  # a client waiting for the model from the drop on
        # --no-cache: the five pipelines share the data, and each run must do all of its work.
        served_at = client.submit(first_answer, serve_url, pipeline)
        dropped, view = finished_run(store, drop_key(pipeline, "churn.csv"), cache=False)
        served = served_at.result()
    stages = {s["stage"]: s for s in view["stages"]}
    result = {"watcher pickup": _ts(stages["ingest"]["started"]) - dropped}
    for stage in STAGES:
        result[stage] = stages[stage]["seconds"]
    result["queue hand-offs"] = sum(
        _ts(stages[b]["started"]) - _ts(stages[a]["finished"]) for a, b in pairwise(STAGES)
    )
    result["serve pickup"] = served - _ts(stages["deploy"]["finished"])
    result["drop to served"] = served - dropped
    return result


def alias_moves(settings: Settings, pipeline: str, count: int) -> list[float]:
    """Seconds from an alias move (a rollback, as the console makes it) to every answer of
    `GET /v2/models/<pipeline>` naming the version moved to, for `count` moves between the
    pipeline's two versions. A worker reading its model by name would catch up on its own, so
    this asks without one, as a client that wants "production" does."""
    store = Store.from_settings(settings)
    seconds = []
    for index in range(count):
        current = int(get_alias(store, pipeline)["version"])  # type: ignore[index]
        target = 1 if current == 2 else 2
        first_answer(settings.serve_url, pipeline, str(current))
        pointer = roll_back(
            store, pipeline, version=target, expected=current, broker_url=settings.broker_url
        )
        moved = _ts(pointer["moved"])  # when the alias was written (this machine's clock)
        seconds.append(first_answer(settings.serve_url, pipeline, str(target)) - moved)
        time.sleep(0.5 + (index % 3) * 0.37)  # moves at different points of the poll's cycle
    return seconds


MODES = {
    # What `cauce up` does by default: SeaweedFS's webhook wakes the watcher (POST /events), deploy
    # announces the alias move to the prediction service; the polls are only the fallback.
    "events": {},
    # Polling only: no events token, the service not listening; the watcher polls every 1 s and
    # the prediction service every 2 s (the defaults).
    "polling": {"CAUCE_EVENTS_TOKEN": "", "CAUCE_SERVE_LISTEN": "false"},
}


def measure(mode: str, repeat: int) -> tuple[list[dict[str, float]], tuple[float, float]]:
    """`repeat` timed runs, the cached-versus-uncached pair and alias moves (as `alias move to
    serving` in every row) on a stack of its own."""
    with local_stack(MODES[mode]) as (store, settings):
        time.sleep(2)  # past the watcher's first scan, which would catch a drop made during it
        rows = [measure_once(store, settings.serve_url, f"bench-{i}") for i in range(repeat)]
        cache = [cached_versus_uncached(store, f"bench-cache-{i}") for i in range(3)]
        moves = alias_moves(settings, "bench-cache-0", 2 * repeat)
    for row, pair in zip(rows, zip(moves[0::2], moves[1::2], strict=True), strict=True):
        row["alias move to serving"] = statistics.mean(pair)
    uncached, cached = (statistics.median(c[i] for c in cache) for i in (0, 1))
    return rows, (uncached, cached)


def main() -> None:
    """Run the benchmark and print a table of medians per mode."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    args = parser.parse_args()
    modes = list(MODES) if args.mode == "both" else [args.mode]
    results = {mode: measure(mode, args.repeat) for mode in modes}
    print(
        f"\nmachine: {machine()}; dataset: {DATA.name} ({DATA.stat().st_size:,} bytes); "
        f"{args.repeat} runs per mode, medians\n"
    )
    print(f"| step | {' | '.join(f'{m} (median, min-max)' for m in modes)} |")
    print(f"|---|{'---|' * len(modes)}")
    for name in results[modes[0]][0][0]:
        cells = []
        for mode in modes:
            values = [row[name] for row in results[mode][0]]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"| {name} | {' | '.join(cells)} |")
    for mode in modes:
        uncached, cached = results[mode][1]
        print(
            f"\n{mode}: drop to run end, median of 3: uncached {uncached:.2f} s, "
            f"cached (preprocess and train reused) {cached:.2f} s"
        )
    if len(modes) == 2:
        served = {m: statistics.median(r["drop to served"] for r in results[m][0]) for m in modes}
        print(
            f"\ndrop to served: events {served['events']:.2f} s, polling only "
            f"{served['polling']:.2f} s ({served['polling'] - served['events']:+.2f} s saved)"
        )


if __name__ == "__main__":
    main()
