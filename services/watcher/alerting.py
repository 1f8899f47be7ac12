"""The watcher's alert delivery: a daemon thread takes each alert off the broker's list and posts
it, signed, to CAUCE_ALERT_URL, retrying with backoff; a receiver that fails only holds up this
thread, never the watcher's scans nor any stage. With no URL set, alerts are taken off and dropped
(alerts off), so turning them on later never sends old news."""

from __future__ import annotations

import contextlib
import logging
import threading

import redis
from pydantic import ValidationError

from shared.alerts import ALERTS, COUNTS
from shared.config import Settings
from shared.messages import Alert
from shared.webhook import Outcome, deliver

log = logging.getLogger(__name__)


def deliver_alerts(settings: Settings, stop: threading.Event, *, wait_seconds: float = 1.0) -> None:
    """Deliver alerts as they are raised until `stop` is set, reconnecting to a lost broker."""
    broker = redis.Redis.from_url(
        settings.broker_url, socket_timeout=wait_seconds + 5, socket_connect_timeout=5
    )
    while not stop.is_set():
        try:
            item = broker.blpop([ALERTS], timeout=wait_seconds)
        except (redis.RedisError, OSError) as exc:
            log.info("alerts: %s; trying again", exc)
            stop.wait(wait_seconds)
            continue
        if item is not None:
            handle(settings, broker, item[1], stop)


def handle(
    settings: Settings, broker: redis.Redis, raw: bytes | str, stop: threading.Event
) -> Outcome | None:
    """Post one alert off the list and count how that went; None for one not posted."""
    try:
        alert = Alert.model_validate_json(raw)
    except ValidationError:
        log.warning("alerts: ignored an item of %s that is no alert", ALERTS)
        return None
    if not settings.alert_url or settings.alert_secret is None:
        log.debug("alerts off (CAUCE_ALERT_URL unset): %s not sent", alert.event)
        return None
    outcome = deliver(
        settings.alert_url,
        alert,
        secret=settings.alert_secret.get_secret_value().encode(),
        timeout=settings.alert_timeout_seconds,
        tries=settings.alert_tries,
        pause=stop.wait,
    )
    if outcome.delivered:
        log.info("alert %s %s delivered (%s)", alert.event, alert.id, outcome.status)
    else:
        log.warning(
            "alert %s %s dropped after %s tries: %s (%s)",
            alert.event,
            alert.id,
            outcome.tries,
            outcome.error,
            alert.message,
        )
    with contextlib.suppress(redis.RedisError, OSError):  # a count is only a count
        broker.hincrby(COUNTS, "delivered" if outcome.delivered else "dropped", 1)
    return outcome


def start_alerts(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Start delivering alerts on a daemon thread until `stop` is set."""
    thread = threading.Thread(
        target=deliver_alerts, args=(settings, stop), name="cauce-alerts", daemon=True
    )
    thread.start()
    return thread
