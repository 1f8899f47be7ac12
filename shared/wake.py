"""Waking the watcher when a client has just dropped a file, rather than at its next poll.

`cauce submit` pushes one item on a Redis list; the watcher waits on that list between scans
(BLPOP, at most CAUCE_WATCH_POLL_SECONDS), so it scans `incoming/` at once. Best effort on both
sides: a drop made any other way (an S3 client, a broker out of reach) waits for the poll as
before, and what starts a run is still the scan of the bucket, never the wake itself.
"""

from __future__ import annotations

import redis

WAKE = "cauce:watcher:wake"


def wake_watcher(broker_url: str) -> bool:
    """Ask the watcher to scan now; False when the broker did not answer within a second."""
    try:
        client = redis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1)
        with client.pipeline() as pipe:  # one pending wake is enough, however many drops
            pipe.lpush(WAKE, 1)
            pipe.ltrim(WAKE, 0, 0)
            pipe.execute()
        return True
    except (redis.RedisError, OSError):
        return False


def wait_for_wake(broker: redis.Redis, seconds: float) -> bool:
    """Wait up to `seconds` for a wake (the watcher's pause between scans); True if woken."""
    return broker.blpop([WAKE], timeout=seconds) is not None
