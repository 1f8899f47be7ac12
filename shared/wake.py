"""Telling other processes at once, through the broker, what they would otherwise see at their
next poll of the bucket.

- A drop: `cauce submit` and the watcher's `POST /events` push one item on a Redis list; the
  watcher waits on that list between scans (BLPOP, at most CAUCE_WATCH_POLL_SECONDS), so it scans
  `incoming/` at once.
- An alias move: deploy and the console publish an `AliasMoved` on a Redis channel; every
  prediction service worker subscribes and reads that pipeline's alias at once.

Best effort on both sides: what starts a run is still the scan of the bucket and what a service
serves is still what the alias in the bucket names, never the message itself. A message lost (a
broker out of reach, a subscriber reconnecting) waits for the poll, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from pydantic import ValidationError

from shared.messages import AliasMoved

log = logging.getLogger(__name__)

WAKE = "cauce:watcher:wake"
ALIASES = "cauce:aliases"  # the channel of AliasMoved messages


def _client(broker_url: str) -> redis.Redis:
    return redis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1)


def wake_watcher(broker_url: str) -> bool:
    """Ask the watcher to scan now; False when the broker did not answer within a second."""
    try:
        with _client(broker_url).pipeline() as pipe:  # one pending wake is enough
            pipe.lpush(WAKE, 1)
            pipe.ltrim(WAKE, 0, 0)
            pipe.execute()
        return True
    except (redis.RedisError, OSError):
        return False


def wait_for_wake(broker: redis.Redis, seconds: float) -> bool:
    """Wait up to `seconds` for a wake (the watcher's pause between scans); True if woken."""
    return broker.blpop([WAKE], timeout=seconds) is not None


def announce_alias(broker_url: str, pointer: dict[str, Any]) -> int | None:
    """Publish that an alias moved (`pointer` as `move_alias` returns it); how many subscribers
    heard it, or None when the broker did not answer within a second."""
    message = AliasMoved(
        pipeline=pointer["pipeline"], alias=pointer["alias"], version=pointer["version"]
    )
    try:
        return int(_client(broker_url).publish(ALIASES, message.model_dump_json()))
    except (redis.RedisError, OSError) as exc:
        log.warning("could not announce %s:%s: %s", message.pipeline, message.alias, exc)
        return None


def listen_for_aliases(
    broker_url: str,
    on_move: Callable[[AliasMoved], None],
    stop: threading.Event,
    *,
    on_connect: Callable[[], None] = lambda: None,
    retry_seconds: float = 1.0,
) -> None:
    """Call `on_move` for each alias move announced until `stop` is set, reconnecting when the
    broker goes away. `on_connect` runs after each (re)subscription: moves announced while this
    was away were not heard, so a caller reads the aliases again there."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, health_check_interval=10)
    while not stop.is_set():
        try:
            with client.pubsub(ignore_subscribe_messages=True) as channel:
                channel.subscribe(ALIASES)
                on_connect()
                while not stop.is_set():
                    raw = channel.get_message(timeout=1.0)
                    if raw is None:
                        continue
                    try:
                        moved = AliasMoved.model_validate_json(raw["data"])
                    except ValidationError:
                        log.warning("ignored a message on %s that is no alias move", ALIASES)
                        continue
                    on_move(moved)
        except (redis.RedisError, OSError) as exc:
            log.info("alias announcements: %s; listening again in %ss", exc, retry_seconds)
            stop.wait(retry_seconds)
