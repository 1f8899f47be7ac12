"""The load both servers get: `wrk` (closed loop, fixed connections) and an open-loop client
that sends at a fixed rate whatever the server does, timing each request from when it was due
(so a stalled server shows in p99 instead of slowing the client down, as wrk2 does)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


@dataclass
class Result:
    """Throughput and latency of one load run (milliseconds)."""

    rps: float
    p50: float
    p99: float
    errors: int = 0


def _ms(text: str | None) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", (text or "").strip())
    return float(found.group(1)) * UNITS[found.group(2)] if found else float("nan")


def wrk(url: str, body: bytes, *, connections: int, seconds: float, token: str = "") -> Result:
    """`wrk --latency` POSTing `body` on `connections` connections (one thread per 8)."""
    script = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        + (f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else "")
        + f"wrk.body = [==[{body.decode()}]==]\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    threads = max(1, min(2, connections // 8))
    argv = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{round(seconds)}s",
        "--latency",
    ]
    out = subprocess.run(
        [*argv, "-s", handle.name, url], capture_output=True, text=True, check=True
    ).stdout
    Path(handle.name).unlink()
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(errors.group(1)) if errors else 0
    failed += sum(int(n) for n in socket.groups()) if socket else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, _ms(latency.get("50")), _ms(latency.get("99")), failed)


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """Send one request on an open connection; True when the server keeps it open."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    return not re.search(rb"(?i)connection:\s*close", head)


async def _lane(
    host: str, port: int, request: bytes, dues: list[float], latencies: list[float]
) -> int:
    """One connection sending at its own fixed times; a late answer delays the next send, and
    that delay is counted in the next latency, as wrk2 does. Returns the number of errors."""
    errors, conn = 0, None
    for due in dues:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            keep = await _one(*conn, request)
            latencies.append(time.perf_counter() - due)
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            errors, keep = errors + 1, False
        if not keep and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()
    return errors


async def _open_loop(url: str, body: bytes, rate: float, seconds: float, lanes: int) -> Result:
    parts = urlparse(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    start, total = time.perf_counter() + 0.1, int(rate * seconds)
    dues = [start + index / rate for index in range(total)]
    latencies: list[float] = []
    errors = await asyncio.gather(
        *(_lane(host, port, request, dues[k::lanes], latencies) for k in range(lanes))
    )
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    return Result(len(latencies) / elapsed, float(p50), float(p99), sum(errors))


def open_loop(url: str, body: bytes, *, rate: float, seconds: float, lanes: int = 16) -> Result:
    """Send `rate` requests a second for `seconds` over `lanes` connections, each request timed
    from when it was due."""
    return asyncio.run(_open_loop(url, body, rate, seconds, lanes))
