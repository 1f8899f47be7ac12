"""Staleness by the store's clock: a worker whose clock runs minutes off is judged by when the store
saw its heartbeat, not by what its own clock said."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import redis

from services.watcher.recovery import Recovery
from shared.config import Settings
from shared.heartbeat import last_beat
from shared.layout import stage_key
from shared.messaging import create_celery
from shared.runs import create_run, write_status
from shared.storage import Store

RUN = "01J0000000000000000000TIME"

# A worker's heartbeat, written for `seconds` by a process of its own (under faketime, say).
BEATING = """
import sys, time
from shared.config import load_settings
from shared.heartbeat import heartbeat
from shared.storage import Store

store = Store.from_settings(load_settings())
print(time.time(), flush=True)
with heartbeat(store, sys.argv[1], every=0.2):
    time.sleep(float(sys.argv[2]))
"""


def beat_from_a_clock(settings: Settings, key: str, *, offset: str, seconds: float) -> float:
    """Run a heartbeat for `seconds` in a process whose clock runs `offset` off (faketime's
    syntax, `-5m`); return what that process's clock read as it started, in epoch seconds."""
    if shutil.which("faketime") is None:
        pytest.fail("these tests need Debian's faketime: apt-get install faketime")
    env = {
        **os.environ,
        "CAUCE_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "CAUCE_S3_ACCESS_KEY": settings.s3_access_key or "",
        "CAUCE_S3_SECRET_KEY": settings.s3_secret_key or "",
        "CAUCE_BUCKET": settings.bucket,
    }
    argv = ["faketime", "-f", offset, sys.executable, "-c", BEATING, key, str(seconds)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[0])


def _running_ingest(store: Store) -> None:
    create_run(
        store, run_id=RUN, pipeline="churn", source={"key": "x", "etag": "e"}, spec_text=None
    )
    write_status(store, RUN, "ingest", state="running", started="2026-01-01T00:00:00+00:00")


def _recovery(settings: Settings, store: Store) -> Recovery:
    broker = redis.Redis.from_url(settings.broker_url)
    app = create_celery(settings, "test-store-time")
    recovery = Recovery(store=store, broker=broker, app=app, settings=settings)
    recovery.track(RUN)
    return recovery


def test_the_stores_clock_dates_what_it_writes(store: Store) -> None:
    before = store.server_time()
    store.put_json("probe.json", {})
    written, after = store.modified("probe.json"), store.server_time()
    # Whole seconds on the wire: each reading is within a second of the moment it names.
    assert before - 1 <= written <= after + 1
    assert abs(after - time.time()) < 5  # the test's store shares this machine's clock


def test_a_heartbeat_from_a_clock_five_minutes_behind_is_fresh(
    settings: Settings, store: Store
) -> None:
    _running_ingest(store)
    key = stage_key(RUN, "ingest", "heartbeat.json")
    seen = beat_from_a_clock(settings, key, offset="-5m", seconds=0.5)
    assert time.time() - seen > 290, "the worker's clock was not set back"
    assert abs(store.server_time() - (last_beat(store, key) or 0.0)) < 3
    # No message waits in the queue, yet the worker beat a moment ago: nothing is sent again.
    assert _recovery(settings.model_copy(update={"stale_seconds": 30.0}), store).sweep() == []


def test_a_quiet_heartbeat_from_a_clock_five_minutes_ahead_is_stale(
    settings: Settings, store: Store
) -> None:
    _running_ingest(store)
    key = stage_key(RUN, "ingest", "heartbeat.json")
    seen = beat_from_a_clock(settings, key, offset="+5m", seconds=0.3)
    assert seen - time.time() > 290, "the worker's clock was not set forward"
    recovery = _recovery(settings.model_copy(update={"stale_seconds": 2.0}), store)
    assert recovery.sweep() == []  # it beat a moment ago
    time.sleep(3)
    assert recovery.sweep() == [
        f"ingest.run {RUN}"
    ]  # quiet for longer than 2 s: its worker is gone


def test_a_stage_without_heartbeat_ages_from_its_status_not_its_stamps(
    settings: Settings, store: Store
) -> None:
    # The status says it started in January (a worker's clock, say): the store wrote it just now.
    _running_ingest(store)
    recovery = _recovery(settings.model_copy(update={"stale_seconds": 30.0}), store)
    assert recovery.sweep() == []
