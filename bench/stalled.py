"""`make bench-stalled`: what slow and stalled clients cost everyone else.

Brings up a local stack (`cauce up` on free ports), deploys the serving benchmark's model through
the whole loop, then measures valid one-row predictions (and console pages) three ways: alone;
while N connections each declare a Content-Length 100 bytes longer than the body they send and
then go quiet; and, for the console, while M connections sit open without sending a byte. It
prints the latency of the valid requests, how many failed, and the console's thread count.
See docs/reliability.md ("Hostile input") and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.serving import PIPELINE, deploy_through_cauce, wait_serving
from bench.serving_model import bodies
from bench.stack import local_stack, machine
from shared.stack.local import status


def timed(call: Callable[[], int], count: int) -> tuple[list[float], int]:
    """`count` sequential calls on fresh connections: their seconds, and how many failed."""
    seconds, failed = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            ok = call() == 200
        except requests.RequestException:
            ok = False
        seconds.append(time.perf_counter() - started)
        failed += not ok
    return seconds, failed


def summary(seconds: list[float], failed: int) -> str:
    cuts = statistics.quantiles(seconds, n=100)
    return (
        f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.0f} ms, failed {failed}/{len(seconds)}"
    )


@contextmanager
def stalled(url: str, count: int, *, body: bytes | None) -> Iterator[list[socket.socket]]:
    """`count` connections to `url`: with `body`, each POSTs it declaring 100 bytes more than it
    sends; without, each connects and sends nothing. All stay open until the block ends."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            if body is not None:
                head = (
                    f"POST {urlsplit(url).path} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body) + 100}\r\n\r\n"
                )
                sock.sendall(head.encode() + body)
            socks.append(sock)
        time.sleep(1.0)  # let the server take them all up
        yield socks
    finally:
        for sock in socks:
            sock.close()


def threads(pid: int) -> int:
    """The threads of a process and of its children (granian's master and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for each in [pid, *map(int, children)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                total += int(line.split()[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=50, help="stalled prediction bodies")
    parser.add_argument("--idle", type=int, default=300, help="idle console connections")
    parser.add_argument("--requests", type=int, default=200, help="valid requests per phase")
    args = parser.parse_args()
    one = bodies(1)[0]
    with local_stack() as (store, settings), tempfile.TemporaryDirectory() as work:
        deploy_through_cauce(store, Path(work))
        url = f"{settings.serve_url}/invocations/{PIPELINE}"
        wait_serving(url)
        headers = {"Content-Type": "application/json", "Connection": "close"}

        def predict() -> int:
            return requests.post(url, data=one, headers=headers, timeout=5).status_code

        console = f"http://{settings.console_host}:{settings.console_port}/runs"

        def page() -> int:
            return requests.get(console, headers={"Connection": "close"}, timeout=5).status_code

        console_pid = next(int(p["pid"]) for p in status(settings.home) if p["name"] == "console")

        def report(label: str, call: Callable[[], int], count: int) -> None:
            line = summary(*timed(call, count))
            print(f"{label}: {line}, console threads {threads(console_pid)}")

        timed(predict, 20)  # warm-up
        timed(page, 5)
        print(f"machine: {machine()}")
        report("predict alone", predict, args.requests)
        with stalled(url, args.stalled, body=one):
            report(f"predict, {args.stalled} stalled bodies", predict, args.requests)
        report("console alone", page, args.requests // 4)
        with stalled(console, args.stalled, body=b"{}"):
            report(f"console, {args.stalled} stalled bodies", page, args.requests // 4)
        with stalled(console, args.idle, body=None):
            report(f"console, {args.idle} idle connections", page, args.requests // 4)


if __name__ == "__main__":
    main()
