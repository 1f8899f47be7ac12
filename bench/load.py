"""The load both servers get: `wrk` (closed loop, fixed connections) and an open-loop client
(bench/openloop.c) that sends at a fixed rate whatever the server does, timing each request
from when it was due (so a stalled server shows in p99 instead of slowing the client down, as
wrk2 does). wrk2 itself is in no registry this project may use; the client is 200 lines of C so
that it costs the two cores it shares with the server as little as wrk does."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
SOURCE = ROOT / "bench" / "openloop.c"
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


def openloop_binary() -> Path:
    """bench/openloop.c compiled into .cache/ (again whenever the source is newer)."""
    binary = CACHE / "openloop"
    if not binary.exists() or binary.stat().st_mtime < SOURCE.stat().st_mtime:
        CACHE.mkdir(exist_ok=True)
        subprocess.run(["cc", "-O2", "-Wall", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def open_loop(
    url: str, body: bytes, *, rate: float, seconds: float, connections: int = 32, token: str = ""
) -> Result:
    """`rate` requests a second for `seconds` over `connections` keep-alive connections, each
    timed from when it was due (bench/openloop.c). rps is what was answered over the run."""
    parts = urlparse(url)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body").write_bytes(body)
        argv = [
            str(openloop_binary()),
            parts.hostname or "127.0.0.1",
            str(parts.port or 80),
            parts.path,
            str(Path(tmp) / "body"),
            f"{rate:.1f}",
            str(seconds),
            str(connections),
            str(Path(tmp) / "out"),
            *([token] if token else []),
        ]
        subprocess.run(argv, check=True)
        *lines, summary = (Path(tmp) / "out").read_text().splitlines()
    counts = dict(zip(summary.split()[::2], map(int, summary.split()[1::2]), strict=True))
    ms = np.array(lines, dtype=float) / 1e3
    p50, p99 = np.percentile(ms, [50, 99]) if len(ms) else (float("nan"),) * 2
    failed = counts["errors"] + counts["unsent"]
    return Result(counts["answered"] / seconds, float(p50), float(p99), failed)
