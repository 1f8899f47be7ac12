"""Runs-page load times with 10,000 runs in the bucket: `make bench-console`.

Starts SeaweedFS (`weed mini`) and the console (`python -m services.console`) on free ports in a
temporary directory, writes N runs into the bucket as the stages leave them (`run.json` plus each
stage's `status.json`; ids spread over the last 30 days, five pipelines, mostly succeeded, some
failed, a few running), then times page loads over HTTP from a separate process: the first page,
the next page, a page deep in the history, and filtered pages. With --baseline it also times
`shared.runs.list_runs`, which reads every run (what `cauce runs` did until it read pages too).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import requests
from botocore.config import Config
from ulid import ULID

from shared.config import Settings
from shared.layout import drop_key
from shared.pipeline import STAGES
from shared.runs import create_run, list_runs, write_status
from shared.stack.servers import free_port, http_answers, weed_argv
from shared.storage import Store

PIPELINES = ("churn", "fraud", "prices", "demand", "leads")
KEY, SECRET = "bench", "bench-secret-key"


def seed(store: Store, count: int, *, workers: int = 32) -> list[str]:
    """Write `count` runs spread over the last 30 days; return their ids, oldest first."""
    rng = random.Random(0)
    end = datetime.now(UTC)
    plans = []
    for _ in range(count):
        when = end - timedelta(seconds=rng.uniform(0, 30 * 86400))
        state = rng.choices(("succeeded", "failed", "running"), weights=(85, 12, 3))[0]
        plans.append((str(ULID.from_datetime(when)), rng.choice(PIPELINES), state, when))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda plan: _seed_one(store, *plan), plans))
    return sorted(plan[0] for plan in plans)


def _seed_one(store: Store, run_id: str, pipeline: str, state: str, when: datetime) -> None:
    source = {"key": drop_key(pipeline, "data.csv"), "etag": '"0"', "size": 1, "modified": ""}
    create_run(store, run_id=run_id, pipeline=pipeline, source=source, spec_text=None)
    done = {"succeeded": len(STAGES), "failed": 2, "running": 2}[state]
    for index, stage in enumerate(STAGES[:done]):
        started = when + timedelta(seconds=index)
        stage_state = "succeeded" if index < done - 1 or state == "succeeded" else state
        fields = {"state": stage_state, "started": started.isoformat(), "attempts": 1}
        if stage_state != "running":
            fields["finished"] = (started + timedelta(seconds=0.5)).isoformat()
        if stage_state == "failed":
            fields["error"] = "the target column is constant"
        write_status(store, run_id, stage, **fields)


def timed(url: str, repeat: int) -> list[float]:
    """Seconds for each of `repeat` GETs of `url` (each must answer 200)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = requests.get(url, timeout=60)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:300]
    return times


def _start(argv: list[str], env: dict[str, str], log: Path, probe: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not http_answers(probe):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{argv[0]} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def measure(console: str, ids: list[str], repeat: int) -> dict[str, list[float]]:
    """Time the runs page in the shapes a person loads it; the first load of each row finds the
    console's cache of ended runs cold, except for runs an earlier row showed."""
    deep = ids[len(ids) // 2]
    return {
        "/runs (first page, 25 runs)": timed(f"{console}/runs", repeat),
        "/runs?before=… (second page)": timed(f"{console}/runs?before={ids[-25]}", repeat),
        "/runs?before=… (halfway back)": timed(f"{console}/runs?before={deep}", repeat),
        "/runs?pipeline=fraud (1 in 5 match)": timed(f"{console}/runs?pipeline=fraud", repeat),
        "/runs?state=failed (12% match)": timed(f"{console}/runs?state=failed", repeat),
        "/api/runs (JSON, first page)": timed(f"{console}/api/runs", repeat),
    }


def measure_cli(env: dict[str, str], repeat: int) -> dict[str, list[float]]:
    """Time `cauce runs` as a person types it: the whole command, Python's start included."""
    cauce = str(Path(sys.executable).parent / "cauce")
    rows = {
        "`cauce runs` (20 newest; the whole command)": [cauce, "runs"],
        "`cauce runs --state failed`": [cauce, "runs", "--state", "failed"],
    }
    results = {}
    for name, argv in rows.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
            times.append(time.perf_counter() - started)
        results[name] = times
    return results


def _env(root: Path, s3_port: int, console_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUCE_")}
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        CAUCE_HOME=str(root / "home"),
        CAUCE_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}",
        CAUCE_S3_ACCESS_KEY=KEY,
        CAUCE_S3_SECRET_KEY=SECRET,
        CAUCE_CONSOLE_PORT=str(console_port),
        CAUCE_BUCKET="bench",
    )
    return env


def _wide_store(settings: Settings, connections: int = 32) -> Store:
    """A store whose connection pool lets `connections` threads write at once."""
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=connections),
    )
    return Store(client, settings.bucket)


@contextmanager
def servers(root: Path) -> Iterator[tuple[Store, dict[str, str]]]:
    """SeaweedFS on free ports; yields its store and the environment the console needs."""
    s3_port = free_port(also_free_at=10000)
    env = _env(root, s3_port, free_port())
    argv = weed_argv(s3_port=s3_port, data_dir=root / "s3")
    s3 = _start(argv, env, root / "weed.log", f"http://127.0.0.1:{s3_port}/")
    try:
        settings = Settings(
            s3_endpoint_url=f"http://127.0.0.1:{s3_port}",
            s3_access_key=KEY,
            s3_secret_key=SECRET,
            bucket="bench",
        )
        yield _wide_store(settings), env
    finally:
        s3.terminate()
        s3.wait(timeout=30)


def report(results: dict[str, list[float]], header: str, baseline: float | None) -> None:
    """Print the figures as a Markdown table."""
    print(f"\n{header}\n")
    print("| page | first load ms (cold) | then: median ms | p95 ms |\n|---|---|---|---|")
    for name, times in results.items():
        cold, ms = times[0] * 1000, sorted(t * 1000 for t in times[1:])
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        print(f"| {name} | {cold:.0f} | {statistics.median(ms):.0f} | {p95:.0f} |")
    if baseline is not None:
        print(f"\nlist_runs over every run (what `cauce runs` did): {baseline:.1f} s")


def main() -> None:
    """Seed, start the console, measure, and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--baseline", action="store_true", help="also time list_runs (slow)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cauce-bench-console-"))
    with servers(root) as (store, env):
        store.ensure_bucket()
        started = time.perf_counter()
        ids = seed(store, args.runs)
        seeded = time.perf_counter() - started
        console = f"http://127.0.0.1:{env['CAUCE_CONSOLE_PORT']}"
        argv = [sys.executable, "-m", "services.console"]
        proc = _start(argv, env, root / "console.log", f"{console}/api/health")
        try:
            results = measure(console, ids, args.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        results.update(measure_cli(env, repeat=min(args.repeat, 10)))
        baseline = None
        if args.baseline:
            started = time.perf_counter()
            assert len(list_runs(store)) == len(ids)
            baseline = time.perf_counter() - started
    header = (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"{len(ids):,} runs seeded in {seeded:.0f} s; {args.repeat} loads each"
    )
    report(results, header, baseline)


if __name__ == "__main__":
    main()
