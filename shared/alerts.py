"""Raising alerts: a run failed, a model promoted or rolled back, drift or a live metric past its
threshold.

Raising one never talks HTTP: it appends the alert's JSON to a Redis list (one call, capped, so an
absent receiver cannot grow Redis without bound), and a broker error is logged, never raised. The
watcher takes alerts off the list and posts them, signed, to CAUCE_ALERT_URL (services/watcher/
alerting.py, shared/webhook.py). Delivery is best effort: what a stage records in the bucket is
the truth, an alert only tells someone about it.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from shared.ids import new_run_id, now
from shared.messages import Alert, AlertEvent

log = logging.getLogger(__name__)

ALERTS = "cauce:alerts"  # the list the watcher delivers from, oldest first
KEPT = 1000  # alerts the list holds at most; past it the oldest go
COUNTS = "cauce:alerts:counts"  # a hash: how many alerts the watcher delivered, dropped

Broker = str | redis.Redis


def new_alert(
    event: AlertEvent,
    message: str,
    *,
    pipeline: str | None = None,
    run_id: str | None = None,
    version: int | None = None,
    details: dict[str, Any] | None = None,
) -> Alert:
    """An alert made now, with an id of its own (the receiver's X-Cauce-Delivery)."""
    return Alert(
        id=new_run_id(),
        event=event,
        time=now(),
        pipeline=pipeline or None,
        run_id=run_id,
        version=version,
        message=message[:4000],
        details=details or {},
    )


def _client(broker: Broker) -> redis.Redis:
    if isinstance(broker, redis.Redis):
        return broker
    return redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)


def raise_alert(broker: Broker, alert: Alert) -> bool:
    """Queue `alert` for the watcher to post; False (logged) when the broker did not take it."""
    try:
        with _client(broker).pipeline() as pipe:
            pipe.rpush(ALERTS, alert.model_dump_json())
            pipe.ltrim(ALERTS, -KEPT, -1)
            length = pipe.execute()[0]
    except (redis.RedisError, OSError) as exc:
        log.warning("alert %s not raised (broker: %s): %s", alert.event, exc, alert.message)
        return False
    if int(length) > KEPT:
        log.warning("%s alerts wait for delivery: the oldest was dropped", length - 1)
    return True


def run_failed(broker: Broker, *, pipeline: str, run_id: str, stage: str, reason: str) -> bool:
    """Raise `run.failed` for a run whose `stage` failed with `reason`."""
    message = f"run {run_id} of {pipeline or '(no pipeline)'} failed at {stage}: {reason}"
    alert = new_alert(
        "run.failed",
        message,
        pipeline=pipeline,
        run_id=run_id,
        details={"stage": stage, "reason": reason},
    )
    return raise_alert(broker, alert)


def model_promoted(
    broker: Broker, *, pipeline: str, version: int, previous: int | None, run_id: str, reason: str
) -> bool:
    """Raise `model.promoted` when deploy moved production to a freshly trained version."""
    was = f" (was v{previous})" if previous else ""
    alert = new_alert(
        "model.promoted",
        f"{pipeline} v{version} is now production{was}: {reason}",
        pipeline=pipeline,
        run_id=run_id,
        version=version,
        details={"alias": "production", "previous": previous, "reason": reason},
    )
    return raise_alert(broker, alert)


def model_rolled_back(
    broker: Broker, *, pipeline: str, alias: str, version: int, previous: int | None, reason: str
) -> bool:
    """Raise `model.rolled_back` when a person moved an alias to an existing version."""
    alert = new_alert(
        "model.rolled_back",
        f"{alias} of {pipeline} moved from v{previous} to v{version}: {reason}",
        pipeline=pipeline,
        version=version,
        details={"alias": alias, "previous": previous, "reason": reason},
    )
    return raise_alert(broker, alert)


def drift_detected(
    broker: Broker,
    *,
    pipeline: str,
    version: int,
    feature: str,
    value: float,
    threshold: float,
    details: dict[str, Any] | None = None,
) -> bool:
    """Raise `drift.detected` when a feature's (or the predictions') drift passed its threshold."""
    alert = new_alert(
        "drift.detected",
        f"{pipeline} v{version}: drift of {feature} is {value:.3g}, over {threshold:g}",
        pipeline=pipeline,
        version=version,
        details={"feature": feature, "value": value, "threshold": threshold, **(details or {})},
    )
    return raise_alert(broker, alert)


def metric_below_threshold(
    broker: Broker,
    *,
    pipeline: str,
    version: int,
    metric: str,
    value: float,
    threshold: float,
    details: dict[str, Any] | None = None,
) -> bool:
    """Raise `metric.below_threshold` when a version's live metric fell under its threshold."""
    alert = new_alert(
        "metric.below_threshold",
        f"{pipeline} v{version}: live {metric} is {value:.4g}, below {threshold:g}",
        pipeline=pipeline,
        version=version,
        details={"metric": metric, "value": value, "threshold": threshold, **(details or {})},
    )
    return raise_alert(broker, alert)
