"""A webhook receiver for the alert tests: a real HTTP server on a free port of 127.0.0.1 that
records each request and checks its signature exactly as the README tells a receiver to."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "alert-test-secret"


@dataclass
class Received:
    """One request the receiver got: its headers, its JSON body, whether its signature held."""

    headers: dict[str, str]
    body: dict[str, Any]
    signed: bool


@dataclass
class Receiver:
    """What the receiver answers (a status per request, then `status`) and what it got."""

    url: str = ""
    status: int = 200
    script: list[int] = field(default_factory=list)  # statuses of the next requests, in order
    sleep: float = 0.0  # seconds to wait before answering (a receiver that hangs)
    got: list[Received] = field(default_factory=list)

    def wait_for(self, count: int, *, timeout: float = 30) -> list[Received]:
        """The requests once `count` have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.got)} alert(s) arrived, not {count}: {self.got}")
            time.sleep(0.05)
        return list(self.got)

    def events(self) -> list[str]:
        """The events received, in order."""
        return [r.body["event"] for r in self.got]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The README's check of an alert's signature, as written there."""
    return verified(secret.encode(), headers, body)


def verified(secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the request is signed with `secret` and recent (the README's snippet)."""
    timestamp = headers["X-Cauce-Timestamp"]
    signed = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 300  # an old request replayed is refused
    return fresh and hmac.compare_digest("sha256=" + signed, headers["X-Cauce-Signature"])


@contextmanager
def receiving(secret: str = SECRET) -> Iterator[Receiver]:
    """A receiver listening on a free port until the block ends."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = dict(self.headers.items())
            receiver.got.append(Received(headers, json.loads(body), verify(secret, headers, body)))
            status = receiver.script.pop(0) if receiver.script else receiver.status
            time.sleep(receiver.sleep)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
