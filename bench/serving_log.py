"""`make bench-prediction-log`: what the prediction log costs the prediction service.

The serving benchmark's model (bench/serving_model.py) is trained three times through one local
stack, as three pipelines that differ only in `monitoring.sample`: 0 (the log off), 0.1 (the
default) and 1 (every request logged, the worst case). Each is loaded with one-row requests:
sequential (one connection) and closed-loop at several connection counts, in turns (off, on,
default, then again) so that the machine's drift over the run falls on all three alike, each
after the log has written what the one before gave it (the pipelines share the service's
workers); the median of the turns is reported. See docs/benchmarks.md, "The prediction log".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.load import wrk
from bench.serving import deploy_through_cauce, wait_serving
from bench.serving_model import SPEC, bodies
from bench.stack import local_stack
from shared.layout import prediction_log_prefix, spec_key

SAMPLES = {"log off (sample 0)": 0.0, "every request (sample 1)": 1.0, "default (sample 0.1)": 0.1}


def settle(metrics_url: str, timeout: float = 90.0) -> None:
    """Wait until the service's prediction log has written (or dropped) what it was given: the
    pipelines share the service's workers, and a backlog left by one would be written while the
    next is measured."""
    last, steady, deadline = None, 0, time.monotonic() + timeout
    while steady < 3 and time.monotonic() < deadline:
        text = requests.get(metrics_url, timeout=10).text
        total = sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("cauce_prediction_log_rows_total")
        )
        steady = steady + 1 if total == last else 0
        last = total
        time.sleep(1)


def main() -> None:
    """Deploy the three pipelines, load each in turns and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument(
        "--connections", type=lambda s: [int(c) for c in s.split(",")], default=[4, 16]
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cauce-bench-log-"))
    one = bodies(1)[0]
    figures: dict[str, dict[str, list[float]]] = {n: {} for n in SAMPLES}
    with local_stack() as (store, settings):
        urls = {}
        for index, (name, sample) in enumerate(SAMPLES.items()):
            pipeline = f"bench-log-{index}"
            store.ensure_bucket()
            store.put_bytes(
                spec_key(pipeline), f"{SPEC}monitoring: {{sample: {sample}}}\n".encode()
            )
            deploy_through_cauce(store, workdir, pipeline, spec_written=True)
            urls[name] = f"{settings.serve_url}/invocations/{pipeline}"
            wait_serving(urls[name])
        for turn in range(args.turns):
            for name, url in urls.items():
                wrk(url, one, connections=4, seconds=2)  # warm-up
                sequential = wrk(url, one, connections=1, seconds=args.seconds)
                best = max(
                    (wrk(url, one, connections=c, seconds=args.seconds) for c in args.connections),
                    key=lambda r: r.rps,
                )
                settle(f"{settings.serve_url}/metrics")
                got = figures[name]
                for key, value in (
                    ("sequential req/s", sequential.rps),
                    ("sequential p50 ms", sequential.p50),
                    ("sequential p99 ms", sequential.p99),
                    ("best req/s", best.rps),
                ):
                    got.setdefault(key, []).append(value)
                print(f"  turn {turn + 1}, {name}: sequential {sequential}, best {best.rps:.0f}")
        logged = {
            name: sum(1 for _ in store.list_objects(prediction_log_prefix(f"bench-log-{i}")))
            for i, name in enumerate(SAMPLES)
        }
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}; {args.seconds:.0f} s per run, {args.turns} turns "
        "(medians); one row per request\n"
    )
    keys = ["sequential req/s", "sequential p50 ms", "sequential p99 ms", "best req/s"]
    print("| prediction log | " + " | ".join(keys) + " | log files written |")
    print("|---|" + "---|" * (len(keys) + 1))
    off = {k: statistics.median(figures["log off (sample 0)"][k]) for k in keys}
    for name in SAMPLES:
        cells = []
        for key in keys:
            value = statistics.median(figures[name][key])
            change = (value / off[key] - 1) * 100 if name != "log off (sample 0)" else None
            cells.append(f"{value:.2f}" + (f" ({change:+.1f}%)" if change is not None else ""))
        print(f"| {name} | " + " | ".join(cells) + f" | {logged[name]} |")


if __name__ == "__main__":
    main()
