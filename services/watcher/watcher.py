"""The watcher: every new object under `incoming/<pipeline>/` starts exactly one run."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid

import redis
from celery import Celery

from services.watcher.recovery import LEDGER, SENT, Recovery
from shared.config import Settings, load_settings
from shared.errors import CauceError, DataError, NotFound
from shared.ids import new_run_id, now
from shared.layout import BATCH, INCOMING, job_key, spec_key
from shared.messages import RunStage, ScoreFile
from shared.messaging import create_celery, send
from shared.pipeline import STAGES, TASKS
from shared.runs import create_run
from shared.storage import ObjectInfo, Store, check_name

log = logging.getLogger(__name__)

LOCK = "cauce:watcher:lock"
# Batch prediction (issue 7): a file under batch/<pipeline>/ becomes one batch.run job.
BATCH_LEDGER = "cauce:ledger:batch"


def pipeline_of(key: str, prefix: str = INCOMING) -> str | None:
    """The pipeline a dropped key belongs to, or None for keys that are not drops."""
    parts = key[len(prefix) :].split("/")
    if len(parts) < 2 or not parts[-1] or parts[-1].startswith("."):
        return None  # a folder marker, a hidden file or a file directly under incoming/
    try:
        return check_name(parts[0])
    except DataError:
        log.warning("ignoring %s: %r is not a valid pipeline name", key, parts[0])
        return None


class Watcher:
    """Turns drops into runs, recording each (key, ETag, time) once in a Redis ledger."""

    def __init__(self, *, store: Store, broker: redis.Redis, app: Celery) -> None:
        self.store = store
        self.broker = broker
        self.app = app
        self.seen: set[str] = set()

    def scan(self) -> list[str]:
        """Look at `incoming/` once; return the ids of the runs started."""
        started = []
        for item in self.store.list_objects(INCOMING):
            entry = f"{item.key}|{item.etag}|{item.modified}"
            if entry in self.seen:
                continue
            pipeline = pipeline_of(item.key)
            run_id = self._start(item, entry, pipeline) if pipeline else None
            if run_id is not None:
                started.append(run_id)
            self.seen.add(entry)
        return started

    def scan_batch(self) -> list[str]:
        """Look at `batch/` once; queue one batch.run job per new file, return the job ids."""
        jobs = []
        for item in self.store.list_objects(BATCH):
            entry = f"{item.key}|{item.etag}|{item.modified}"
            pipeline = None if entry in self.seen else pipeline_of(item.key, BATCH)
            self.seen.add(entry)
            if pipeline is None:
                continue
            self.broker.hsetnx(BATCH_LEDGER, entry, new_run_id())
            claimed = self.broker.hget(BATCH_LEDGER, entry)
            job_id = claimed.decode() if isinstance(claimed, bytes) else str(claimed)
            if self.broker.sismember(SENT, job_id):
                continue
            job = ScoreFile(job_id=job_id, pipeline=pipeline, key=item.key)
            # The object's ETag and time let `cauce batch` find the job of its own upload.
            source = {"source": item.key, "etag": item.etag, "modified": item.modified}
            status = {**job.model_dump(), **source, "state": "queued", "queued": now()}
            self.store.put_json(job_key(pipeline, job_id), status)
            send(self.app, "batch.run", job, queue="batch")
            self.broker.sadd(SENT, job_id)
            log.info("batch job %s queued for %s", job_id, item.key)
            jobs.append(job_id)
        return jobs

    def _start(self, item: ObjectInfo, entry: str, pipeline: str) -> str | None:
        """Start the run for one drop unless the ledger shows it was started already."""
        self.broker.hsetnx(LEDGER, entry, new_run_id())
        claimed = self.broker.hget(LEDGER, entry)
        run_id = claimed.decode() if isinstance(claimed, bytes) else str(claimed)
        if self.broker.sismember(SENT, run_id):
            return None
        # Claimed but maybe not started (a watcher died here): both steps below are idempotent.
        create_run(
            self.store,
            options=run_options(self.store.metadata(item.key)),
            run_id=run_id,
            pipeline=pipeline,
            spec_text=self._spec(pipeline),
            source={
                "key": item.key,
                "etag": item.etag,
                "size": item.size,
                "modified": item.modified,
            },
        )
        message = RunStage(run_id=run_id, pipeline=pipeline)
        send(self.app, TASKS[STAGES[0]], message, queue=STAGES[0])
        self.broker.sadd(SENT, run_id)
        log.info("run %s started for %s", run_id, item.key)
        return run_id

    def _spec(self, pipeline: str) -> str | None:
        """The pipeline's spec text at the moment of the drop (snapshotted into the run)."""
        try:
            return self.store.get_bytes(spec_key(pipeline)).decode("utf-8", "replace")
        except NotFound:
            return None


def run_options(metadata: dict[str, str]) -> dict[str, bool]:
    """Options a drop carries as object metadata (`cauce submit --no-cache/--force` sets them)."""
    return {
        "cache": metadata.get("cauce-cache", "true").lower() != "false",
        "force": metadata.get("cauce-force", "false").lower() == "true",
    }


def hold_lock(broker: redis.Redis, token: str, seconds: float) -> bool:
    """Take or renew the single-active-watcher lock."""
    if broker.set(LOCK, token, nx=True, px=int(seconds * 1000)):
        return True
    if broker.get(LOCK) == token.encode():
        broker.pexpire(LOCK, int(seconds * 1000))
        return True
    return False


def watch(settings: Settings, stop: threading.Event) -> None:
    """Scan `incoming/` and recover stalled runs until `stop` is set; only the lock holder works."""
    store = Store.from_settings(settings)
    broker = redis.Redis.from_url(settings.broker_url)
    app = create_celery(settings, "watcher")
    watcher = Watcher(store=store, broker=broker, app=app)
    recovery = Recovery(store=store, broker=broker, app=app, settings=settings)
    token = uuid.uuid4().hex
    store_ready, next_sweep = False, 0.0
    while not stop.is_set():
        try:
            if not store_ready:
                store.ensure_bucket()
                store_ready = True
            if hold_lock(broker, token, seconds=max(10.0, 5 * settings.watch_poll_seconds)):
                recovery.ensure_ledger()  # before scanning: a lost ledger must not rerun drops
                for run_id in watcher.scan():
                    recovery.track(run_id)
                watcher.scan_batch()
                if time.monotonic() >= next_sweep:
                    recovery.sweep()
                    next_sweep = time.monotonic() + max(1.0, settings.stale_seconds / 4)
        except (CauceError, redis.RedisError, OSError) as exc:
            log.warning("watcher: %s; trying again", exc)
        stop.wait(settings.watch_poll_seconds)


def main() -> None:
    """Run the watcher until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watch(load_settings(), stop)


if __name__ == "__main__":
    main()
