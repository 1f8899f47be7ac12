"""The table `make bench-serving` prints, and its last line."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load import Result


@dataclass
class Row:
    """One server's figures."""

    name: str
    sequential: Result
    loaded: dict[int, Result]
    best: Result
    rate: float
    fixed: Result
    hundred: Result | None = None
    sweep: dict[tuple[int, float], Result] = field(default_factory=dict)
    repeats: list[Result] = field(default_factory=list)  # the headline open-loop runs


def print_table(rows: list[Row]) -> None:
    """Markdown table, ratios against MLflow's best configuration, and the summary line."""
    levels = sorted(rows[0].loaded)
    head = [
        "server",
        "sequential req/s",
        "p50 ms",
        "p99 ms",
        *[f"req/s @{c} conn" for c in levels],
        "open-loop rate",
        "open-loop p50",
        "p99 ms",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        cells = [
            row.name,
            f"{row.sequential.rps:.0f}",
            f"{row.sequential.p50:.2f}",
            f"{row.sequential.p99:.2f}",
            *[f"{row.loaded[c].rps:.0f}" for c in levels],
            f"{row.rate:.0f}/s",
            f"{row.fixed.p50:.2f}",
            f"{row.fixed.p99:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")
    ours, others = rows[0], [r for r in rows[1:] if r.name.startswith("mlflow")]
    errors = sum(
        r.sequential.errors
        + sum(x.errors for x in r.loaded.values())
        + sum(x.errors for x in r.sweep.values() or [r.fixed])
        + sum(x.errors for x in r.repeats[1:])
        for r in rows
    )
    print(f"\nfailed requests, all runs: {errors}")
    if ours.sweep:
        print(f"\n{ours.name}, open loop (latency from when each request was due):\n")
        print("| connections | share of best | rate | answered/s | p50 ms | p99 ms | failed |")
        print("|---|---|---|---|---|---|---|")
        for (conns, share), result in sorted(ours.sweep.items()):
            print(
                f"| {conns} | {share:.0%} | {share * ours.best.rps:.0f}/s | {result.rps:.0f} | "
                f"{result.p50:.2f} | {result.p99:.2f} | {result.errors} |"
            )
        print()
    for row in rows:
        if row.hundred is not None:
            single = 1000 / row.sequential.rps
            per_row = 1000 / row.hundred.rps / 100
            print(
                f"100-row batches ({row.name}): {row.hundred.rps:.0f} req/s sequential, "
                f"{per_row * 1000:.1f} us per row vs {single * 1000:.0f} us for one row: "
                f"{single / per_row:.1f}x per row"
            )
    runs = ", ".join(f"{r.p99:.2f}" for r in ours.repeats or [ours.fixed])
    if not others:
        print(
            f"cauce {ours.best.rps:.0f} req/s at best; open-loop p99 at {ours.rate:.0f} req/s: "
            f"{ours.fixed.p99:.2f} ms (median of {len(ours.repeats) or 1} runs: {runs} ms)"
        )
        return
    theirs = max(others, key=lambda r: r.best.rps)
    print(
        f"best of each: cauce {ours.best.rps:.0f} req/s, {theirs.name} {theirs.best.rps:.0f} "
        f"req/s; cauce open-loop p99 at {ours.rate:.0f} req/s: {ours.fixed.p99:.2f} ms "
        f"(median of {len(ours.repeats) or 1} runs: {runs} ms)"
    )
    print(
        f"serving vs mlflow: {ours.best.rps / theirs.best.rps:.1f}x req/s, "
        f"p50 {ours.sequential.p50:.2f} ms, p99 {ours.fixed.p99:.2f} ms"
    )
