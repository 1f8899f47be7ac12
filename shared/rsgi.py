"""A WSGI app served through granian's RSGI interface, so that a slow client costs only its own
connection.

Under granian's WSGI interface the app's thread reads the request body itself, and granian has
no body timeout: a client that declares a Content-Length and never sends the bytes holds that
thread for as long as it keeps the connection open (two such clients stalled every request to a
two-worker prediction service). Here the worker's event loop reads the body first, while other
requests go on; a body that stops arriving for `idle_seconds` gets a 408, and the WSGI app only
runs once its whole body is in (in memory up to SPOOL_BYTES, then in a temporary file).

A body over `max_body` bytes is read no further than `max_body + 1` bytes: the app sees what
came and the declared Content-Length, answers its own 413, and the connection closes after it.

`threads=0` runs the app on the event loop itself (the prediction service: one request at a
time per worker, as with granian's one blocking thread); `threads=N` runs it on a pool of N
threads (the console, whose pages wait on the object store).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol

SPOOL_BYTES = 1 << 20  # bodies larger than this wait in a temporary file, not in memory
# A body of at most this many declared bytes is read in one await, with `idle_seconds` for all
# of it (at least 6.4 KiB/s at the default 10 s); a larger one chunk by chunk, each chunk
# within `idle_seconds`.
WHOLE_BYTES = 64 << 10
CLOSE = ("connection", "close")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, list[tuple[str, str]], Iterable[bytes]]


class Scope(Protocol):  # what this module reads of granian's RSGI scope
    proto: str
    method: str
    path: str
    query_string: str
    scheme: str
    server: str
    client: str
    http_version: str
    headers: Any


class BodyTimeout(Exception):
    """The client stopped sending the body it announced."""


class RsgiWsgi:
    """The RSGI app (`granian --interface rsgi module:app`) that serves `app`."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        max_body: int | None,
        idle_seconds: float,
        threads: int = 0,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.idle_seconds = idle_seconds
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi") if threads else None
        self.base = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": bool(threads),
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }

    async def __call__(self, scope: Scope, protocol: Any) -> None:
        if scope.proto != "http":
            return
        environ = self.environ(scope)
        try:
            body, complete = await self.read_body(environ, protocol)
        except BodyTimeout:
            protocol.response_bytes(*self.timed_out())
            return
        environ["wsgi.input"] = body
        try:
            if self.pool is None:
                status, headers, payload = self.run_all(environ)
            else:
                loop = asyncio.get_running_loop()
                call = self.run_all
                status, headers, payload = await loop.run_in_executor(self.pool, call, environ)
        finally:
            body.close()
        if not complete:  # the rest of the body is still on its way: this connection is done
            headers = [h for h in headers if h[0].lower() != "connection"] + [CLOSE]
        protocol.response_bytes(status, headers, payload)

    def environ(self, scope: Scope) -> dict[str, Any]:
        """The WSGI environ of one request (PEP 3333: PATH_INFO as latin-1 of the UTF-8 bytes)."""
        server_host, _, server_port = scope.server.rpartition(":")
        client_host, _, client_port = scope.client.rpartition(":")
        environ = {
            **self.base,
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host,
            "REMOTE_PORT": client_port,
            "wsgi.url_scheme": scope.scheme,
        }
        for name, value in scope.headers.items():
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    async def read_body(self, environ: dict[str, Any], protocol: Any) -> tuple[IO[bytes], bool]:
        """The body (at most max_body + 1 bytes of it), and whether it was read to its end."""
        length = str(environ.get("CONTENT_LENGTH", "")).strip()
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if not chunked and (not length or length == "0"):
            return io.BytesIO(b""), True
        cap = None if self.max_body is None else self.max_body + 1
        if length.isdigit() and cap is not None and int(length) >= cap:
            return io.BytesIO(b""), False  # refused on its declared size: nothing to read
        if length.isdigit() and int(length) <= WHOLE_BYTES:
            return await self.read_whole(protocol, int(length))
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115 (returned)
        received = 0
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.idle_seconds) as deadline:
                async for chunk in protocol:
                    spool.write(chunk)
                    received += len(chunk)
                    if cap is not None and received >= cap:
                        spool.seek(0)
                        return spool, False
                    deadline.reschedule(loop.time() + self.idle_seconds)
        except TimeoutError:
            spool.close()
            raise BodyTimeout from None
        spool.seek(0)
        return spool, not length.isdigit() or received == int(length)

    async def read_whole(self, protocol: Any, length: int) -> tuple[IO[bytes], bool]:
        """A small body with its length declared, in one read: `idle_seconds` for all of it
        (one await, where the chunk loop above costs a wake-up of the loop per chunk)."""
        try:
            async with asyncio.timeout(self.idle_seconds):
                body = await protocol()
        except TimeoutError:
            raise BodyTimeout from None
        return io.BytesIO(body), len(body) == length

    def run(self, environ: dict[str, Any]) -> Answer:
        """Call the WSGI app: its status, headers and body iterable."""
        answer: list[Any] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            answer[:] = [int(status.split(" ", 1)[0]), list(headers)]
            return written.append

        chunks = self.app(environ, start_response)
        if written:
            chunks = [*written, *chunks]
        return answer[0], answer[1], chunks

    def run_all(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """`run`, with the body iterable read to its end and closed (on a pool thread)."""
        status, headers, chunks = self.run(environ)
        try:
            return status, headers, b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def timed_out(self) -> tuple[int, list[tuple[str, str]], bytes]:
        message = (
            f"the request body stopped arriving for {self.idle_seconds:g} s before its end; "
            "send the whole body (its Content-Length must match what is sent)"
        )
        body = json.dumps({"error": message, "field": "body"}).encode()
        return 408, [("content-type", "application/json"), CLOSE], body


def granian_argv(
    target: str,
    *,
    host: str,
    port: int,
    workers: int,
    grace_seconds: float,
    interface: str = "rsgi",
) -> list[str]:
    """granian's command line for `target` (an RsgiWsgi on uvloop, or a WSGI app with
    interface="wsgi"): one Python thread per worker, keep-alive, a deep backlog, respawn of a
    crashed worker, no access log, and a stop that waits `grace_seconds` for requests in
    flight."""
    grace = min(max(math.ceil(grace_seconds), 1), 1800)  # granian takes whole seconds, 1 to 1800
    # fmt: off
    return [
        sys.executable, "-m", "granian",
        "--interface", interface,
        *(["--loop", "uvloop"] if interface == "rsgi" else []),
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
        "--blocking-threads", "1",
        "--http1-keep-alive",
        "--backlog", "2048",
        "--workers-kill-timeout", str(grace),
        "--respawn-failed-workers",
        "--no-access-log",
        target,
    ]
    # fmt: on


def exec_granian(argv: list[str]) -> None:
    """Replace this process with granian's master, which forks the workers: the master then
    holds no app, and the pid stays the same for `cauce up`'s supervisor."""
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def exit_with_the_master(poll: float = 1.0, grace: float = 10.0) -> None:
    """In a granian worker: stop too when the master dies (SIGKILL, or a stop that raced a worker
    still importing) instead of serving on as an orphan; SIGTERM to itself, then a hard exit."""

    def watch() -> None:
        master = os.getppid()
        while os.getppid() == master:
            time.sleep(poll)
        logging.getLogger(__name__).warning("granian master %d is gone; stopping", master)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="cauce-master-watch", daemon=True).start()
