"""`make bench-scale`: cauce against a plain single-process script on tables of real sizes.

For each size (`--rows 20000,1000000,5000000` by default; 10000000 too if asked) it generates a
table of 17 columns (12 numeric, 3 text, an integer, a yes/no target; about 2% of values missing;
fixed seed) as CSV under .cache/bench-scale/, then, in the same run:

- runs bench/scale_plain.py as a subprocess (pandas, SimpleImputer + OneHotEncoder, a 60/20/20
  split, one default HistGradientBoostingClassifier) for its wall time, peak RSS and accuracy;
- submits the same file to one local stack (`cauce up` in a temporary CAUCE_HOME on free ports,
  upload limits raised) with a spec of one candidate and one trial (the default boosting model),
  times it from the submit to the deployed model, reads each stage's seconds and the test
  accuracy from the run, and samples the resident memory of every stack process and its children
  every 0.2 s;
- sums the stack's PSS (/proc/PID/smaps_rollup) when it is idle: before the first run, and after
  each run once it settled.

It prints a table per size and, last, the line the issue asks for (docs/benchmarks.md):
`scale vs plain script: 20k +S.SS s, 1M X.XXx, 5M Y.YYx; peak worker memory A.Ax / B.Bx the plain
script's`, where the first figure is cauce's wall time minus the plain script's at the smallest
size, the next ones cauce's wall time over the plain script's, and A, B the largest single stack
process's peak RSS over the plain script's peak RSS at the second and third sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.stack import local_stack, machine
from shared.client.render import search_line
from shared.client.submit import await_run_id, submit_dataset, submit_file, wait_for_run
from shared.layout import spec_key
from shared.stack.local import read_state
from shared.storage import Store

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / ".cache" / "bench-scale"
SEED = 20261127
MISSING = 0.02
CHUNK = 250_000
MIB = 1024 * 1024
# One candidate, one trial: the grid of one point, the boosting model's defaults (learning rate
# 0.1, max_iter 100), the plain script's model; the same 60/20/20 split, and the model fitted on
# the training split only, as the script's (`refit: train`; cauce's default fits the served model
# again on the training and validation rows, one more fit).
SPEC = """\
target: target
task: classification
metric: accuracy
split: {test: 0.2, validation: 0.2, seed: 42}
models:
  - estimator: hist_gradient_boosting
    search: {learning_rate: [0.1]}
tuning: {trials: 1, sampler: grid, parallelism: 1}
refit: train
"""
# `--default-spec`: cauce's defaults (every candidate, its search, the default time budget and
# halving on big tables, the served model refitted on training and validation rows); only the
# target, the metric the plain script reports and the same split are given.
DEFAULT_SPEC = """\
target: target
task: classification
metric: accuracy
split: {{test: 0.2, validation: 0.2, seed: 42}}
{tuning}"""
WORDS = [
    ["north", "south", "east", "west", "centre"],
    ["basic", "standard", "plus", "premium", "business", "student", "family", "senior"],
    [f"region-{i:02d}" for i in range(40)],
]


def label(rows: int) -> str:
    """20000 -> 20k, 1000000 -> 1M, 5000000 -> 5M."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1000 == 0:
        return f"{rows // 1000}k"
    return str(rows)


def generate(rows: int, path: Path, seed: int = SEED) -> Path:
    """Write the table at `path` (kept: the same rows and seed give the same file)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    weights = np.random.default_rng(seed).normal(size=12)
    with partial.open("w") as out:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            rng = np.random.default_rng([seed, start])
            numbers = rng.normal(size=(n, 12))
            picks = [rng.integers(0, len(words), n) for words in WORDS]
            count = rng.poisson(3, n)
            score = numbers @ weights / 3 + 0.3 * (picks[1] % 3) - 0.1 * count
            score += np.sin(numbers[:, 0] * 2) + rng.logistic(size=n)
            frame = pd.DataFrame(numbers, columns=[f"x{i:02d}" for i in range(12)])
            for i, (words, pick) in enumerate(zip(WORDS, picks, strict=True)):
                frame[f"t{i}"] = np.asarray(words, dtype=object)[pick]
            frame["count"] = count
            for column in frame.columns:  # every column but the target has gaps
                gaps = rng.random(n) < MISSING
                if column == "count":
                    frame[column] = frame[column].astype("Int64")
                frame.loc[gaps, column] = None
            frame["target"] = np.where(score > 0, "yes", "no")
            frame.to_csv(out, index=False, header=start == 0, float_format="%.5g")
    partial.rename(path)
    return path


@dataclass
class Plain:
    seconds: float
    peak_rss: int
    accuracy: float


def parquet_parts(csv: Path, parts: int) -> list[Path]:
    """The table as `parts` Parquet files of about equal rows (kept, like the CSV), written by
    streaming the CSV: the same rows and types cauce's ingest would read."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    folder = csv.with_name(f"{csv.stem}-{parts}-parts")
    paths = [folder / f"part-{i:03d}.parquet" for i in range(parts)]
    if all(path.exists() for path in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rows = sum(1 for _ in csv.open("rb")) - 1
    per_part = -(-rows // parts)
    reader = pacsv.open_csv(csv, read_options=pacsv.ReadOptions(block_size=16 * MIB))
    index, written, writer = 0, 0, None
    for batch in reader:
        while batch.num_rows:
            if writer is None:
                writer = pq.ParquetWriter(paths[index].with_suffix(".partial"), batch.schema)
            take = min(batch.num_rows, per_part - written)
            writer.write_batch(batch.slice(0, take))
            batch, written = batch.slice(take), written + take
            if written == per_part:
                writer.close()
                paths[index].with_suffix(".partial").rename(paths[index])
                index, written, writer = index + 1, 0, None
    if writer is not None:
        writer.close()
        paths[index].with_suffix(".partial").rename(paths[index])
    return paths


def run_plain(path: Path) -> Plain:
    """The plain script as a subprocess: wall time, peak RSS (from wait4) and accuracy."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.scale_plain", str(path)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        # The threads cauce's workers get (shared.stack.local.child_env): the same for both.
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the plain script failed ({proc.returncode})")
    return Plain(seconds, usage.ru_maxrss * 1024, json.loads(output)["accuracy"])


def tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = Path(f"/proc/{current}/task").iterdir()
            for task in tasks:
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def stack_processes(home: Path) -> dict[str, list[int]]:
    """Each supervised process of the stack (and the supervisor) with its descendants."""
    state = read_state(home) or {"processes": []}
    named = {"supervisor": [int(state["supervisor"])]} if "supervisor" in state else {}
    for proc in state["processes"]:
        if proc.get("pid"):
            named[proc["name"]] = tree(int(proc["pid"]))
    return named


def _field(path: str, name: str) -> int:
    """A `Name:   123 kB` field of a /proc file, in bytes (0 when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pss(home: Path) -> dict[str, int]:
    """The PSS of each process of the stack, its children included."""
    return {
        name: sum(_field(f"/proc/{pid}/smaps_rollup", "Pss") for pid in pids)
        for name, pids in stack_processes(home).items()
    }


def settled_pss(home: Path, wait: float = 20.0) -> dict[str, int]:
    """The idle stack's PSS by process, after `wait` seconds for pool processes to be replaced
    (CAUCE_WORKER_IDLE_RECYCLE_SECONDS, 10 by default, and the restart)."""
    time.sleep(wait)
    return pss(home)


@dataclass
class Sampler:
    """Samples the RSS of every stack process (each pid on its own) every `every` seconds."""

    home: Path
    every: float = 0.2
    peaks: dict[str, int] = field(default_factory=dict)
    total_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = 0
            for name, pids in stack_processes(self.home).items():
                for index, pid in enumerate(pids):
                    rss = _field(f"/proc/{pid}/status", "VmRSS")
                    total += rss
                    key = name if index == 0 else f"{name} (child)"
                    self.peaks[key] = max(self.peaks.get(key, 0), rss)
            self.total_peak = max(self.total_peak, total)
            self._stop.wait(self.every)

    def largest(self) -> tuple[str, int]:
        """The stack process with the highest peak, and that peak."""
        return max(self.peaks.items(), key=lambda item: item[1], default=("-", 0))


@dataclass
class Cauce:
    seconds: float
    stages: dict[str, float]
    accuracy: float | None
    peaks: dict[str, int]
    total_peak: int
    pss_after: dict[str, int]
    search: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)


def run_cauce(
    store: Store, home: Path, path: Path | list[Path], pipeline: str, spec: str = SPEC
) -> Cauce:
    """Submit the table (a file, or the parts of one dataset), wait for the deployed model; time,
    stage seconds, accuracy, memory."""
    store.put_bytes(spec_key(pipeline), spec.encode())
    wake = os.environ["CAUCE_BROKER_URL"]  # as `cauce submit` does, wake the watcher
    with Sampler(home) as sampler:
        started = time.perf_counter()
        if isinstance(path, list):
            upload = submit_dataset(
                store, path, pipeline=pipeline, dataset="parts", broker_url=wake
            )
        else:
            upload = submit_file(store, path, pipeline=pipeline, broker_url=wake)
        run_id = await_run_id(store, upload, timeout=120)
        assert run_id is not None, "no run started within 120 s"
        view = wait_for_run(store, run_id, timeout=3 * 3600)
        seconds = time.perf_counter() - started
    if view["state"] != "succeeded":
        raise RuntimeError(f"run {run_id} {view['state']}: {view['error']}")
    stages = {s["stage"]: float(s["seconds"] or 0.0) for s in view["stages"]}
    accuracy = (view.get("metrics") or {}).get("accuracy")
    return Cauce(
        seconds,
        stages,
        accuracy,
        dict(sampler.peaks),
        sampler.total_peak,
        settled_pss(home),
        view.get("search") or {},
        view.get("best") or {},
    )


def gib(n: int) -> str:
    """Bytes as GiB, or MiB below one GiB."""
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / MIB:.0f} MiB"


def report(
    rows: int,
    size: int,
    plain: Plain,
    cauce: Cauce,
    pss_before: dict[str, int],
    source: str = "CSV",
) -> None:
    """The table of one size."""
    name, peak = max(cauce.peaks.items(), key=lambda item: item[1])
    accuracy = f"{cauce.accuracy:.4f}" if cauce.accuracy is not None else "-"
    print(f"\n{rows:,} rows ({size / MIB:.1f} MiB of {source})")
    print(f"{'':34}{'seconds':>9}{'peak RSS':>12}{'accuracy':>10}")
    peak_plain = gib(plain.peak_rss)
    print(f"{'plain script (CSV)':34}{plain.seconds:9.2f}{peak_plain:>12}{plain.accuracy:10.4f}")
    print(f"{'cauce, submit to deployed':34}{cauce.seconds:9.2f}{gib(peak):>12}{accuracy:>10}")
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in cauce.stages.items())
    handoffs = cauce.seconds - sum(cauce.stages.values())
    print(f"  stages (s): {stages}; hand-offs and waits {handoffs:.2f}")
    top = sorted(cauce.peaks.items(), key=lambda item: -item[1])[:6]
    print("  peak RSS: " + ", ".join(f"{n} {gib(b)}" for n, b in top) + f"; largest: {name}")
    print(f"  sum of every stack process's RSS at its peak sample: {gib(cauce.total_peak)}")
    before, after = sum(pss_before.values()), sum(cauce.pss_after.values())
    print(f"  idle stack PSS: before {gib(before)}, after {gib(after)}")
    grown = sorted(cauce.pss_after, key=lambda n: pss_before.get(n, 0) - cauce.pss_after[n])[:5]
    changes = [f"{n} {(cauce.pss_after[n] - pss_before.get(n, 0)) / MIB:+.0f} MiB" for n in grown]
    print("  idle PSS, most grown: " + ", ".join(changes))
    if cauce.search:
        print(f"  search: {search_line(cauce.search)}; best {cauce.best.get('estimator')}")


def budget_summary(results: list[tuple[int, Plain, Cauce]]) -> str:
    """`--default-spec`'s last line: each size's train seconds against its budget, and its
    accuracy against the plain script's."""
    parts = []
    for rows, plain, cauce in results:
        budget = cauce.search.get("budget_seconds") or 0.0
        accuracy = cauce.accuracy if cauce.accuracy is not None else float("nan")
        parts.append(
            f"{label(rows)} train {cauce.stages.get('train', 0.0):.0f} s of a {budget:.0f} s "
            f"budget, accuracy {accuracy:.4f} vs {plain.accuracy:.4f}"
        )
    return "default spec vs plain script: " + "; ".join(parts)


def summary(results: list[tuple[int, Plain, Cauce]]) -> str:
    """The issue's last line."""
    times, memory = [], []
    for index, (rows, plain, cauce) in enumerate(results):
        if index == 0:
            times.append(f"{label(rows)} {cauce.seconds - plain.seconds:+.2f} s")
        else:
            times.append(f"{label(rows)} {cauce.seconds / plain.seconds:.2f}x")
            memory.append(f"{max(cauce.peaks.values()) / plain.peak_rss:.1f}x")
    return (
        f"scale vs plain script: {', '.join(times)}; "
        f"peak worker memory {' / '.join(memory) or '-'} the plain script's"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="20000,1000000,5000000", help="comma-separated sizes")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="where the tables are kept")
    parser.add_argument(
        "--parquet-parts",
        type=int,
        default=0,
        help="also submit each table as this many Parquet parts of one dataset (a row per size)",
    )
    parser.add_argument(
        "--default-spec",
        action="store_true",
        help="run cauce with its default candidates, search and budget instead of one trial",
    )
    parser.add_argument("--budget", type=float, help="with --default-spec: tuning.budget_seconds")
    args = parser.parse_args()
    spec = SPEC
    if args.default_spec:
        tuning = f"tuning: {{budget_seconds: {args.budget}}}\n" if args.budget else ""
        spec = DEFAULT_SPEC.format(tuning=tuning)
    sizes = sorted(int(n) for n in args.rows.replace("_", "").split(","))
    print(f"machine: {machine()}")
    tables = {}
    for rows in sizes:
        started = time.perf_counter()
        tables[rows] = generate(rows, args.workdir / f"table-{label(rows)}-{SEED}.csv")
        print(f"table {label(rows)}: {tables[rows]} ({time.perf_counter() - started:.1f} s)")
    # Today's defaults refuse files above 200 MiB or 50M cells: raise them for the big sizes.
    os.environ["CAUCE_MAX_UPLOAD_BYTES"] = str(64 * 1024**3)
    os.environ["CAUCE_MAX_TABLE_CELLS"] = str(10**12)
    os.environ.setdefault("CAUCE_TASK_TIME_LIMIT", str(4 * 3600))
    results = []
    with local_stack() as (store, settings):
        home = settings.home.resolve()
        store.ensure_bucket()
        pss_before = settled_pss(home)
        print(f"fresh idle stack: {gib(sum(pss_before.values()))} PSS")
        print("  " + ", ".join(f"{n} {b / MIB:.0f} MiB" for n, b in pss_before.items()))
        for rows in sizes:
            plain = run_plain(tables[rows])
            cauce = run_cauce(store, home, tables[rows], f"scale-{label(rows).lower()}", spec)
            report(rows, tables[rows].stat().st_size, plain, cauce, pss_before)
            results.append((rows, plain, cauce))
            pss_before = cauce.pss_after
            if args.parquet_parts:
                parts = parquet_parts(tables[rows], args.parquet_parts)
                pipeline = f"scale-{label(rows).lower()}-parts"
                parted = run_cauce(store, home, parts, pipeline)
                size = sum(part.stat().st_size for part in parts)
                source = f"Parquet in {len(parts)} parts"
                report(rows, size, plain, parted, pss_before, source)
                pss_before = parted.pss_after
    (args.workdir / "results.json").write_text(
        json.dumps(
            [
                {"rows": rows, "plain": vars(plain), "cauce": vars(cauce)}
                for rows, plain, cauce in results
            ],
            indent=1,
        )
    )
    print()
    print(budget_summary(results) if args.default_spec else summary(results))


if __name__ == "__main__":
    main()
