"""Heartbeats: a worker busy with a stage or trial says so in the bucket every few seconds.

The watcher's recovery reads them: work whose heartbeat went quiet lost its worker (or its queue
message), and is sent again. Messages are idempotent, so a second copy is harmless.

A beat's time is when the store wrote it (its LastModified), and its age is judged against the
store's clock too, never the worker's: a worker whose clock runs minutes off neither looks stalled
while it works nor hides a real stall. The `at` inside is the worker's own clock, for people.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from shared.errors import CauceError
from shared.storage import Store


def worker_id() -> str:
    """This process, as `host:pid` (read per call: pool processes fork after import)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def heartbeat(store: Store, key: str, *, every: float) -> Iterator[None]:
    """Write `{"at": <epoch seconds>, "worker": ...}` to `key` now and every `every` seconds."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            with suppress(CauceError):  # the store is away; the work itself will notice
                store.put_json(key, {"at": time.time(), "worker": worker_id()})
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat {key}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def last_beat(store: Store, key: str) -> float | None:
    """When the store received the last beat at `key` (epoch seconds by the store's clock), or
    None if it never did."""
    try:
        return store.modified(key)
    except CauceError:
        return None
