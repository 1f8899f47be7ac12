"""The watcher: every new object under `incoming/<pipeline>/` starts exactly one run."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid

import redis
from celery import Celery

from services.watcher.alerting import start_alerts
from services.watcher.drops import folder_of, pipeline_of, route, run_options, source_of
from services.watcher.events import Events, serve_events
from services.watcher.monitor import start_monitoring
from services.watcher.parts import (
    COPY_LIMIT,
    MAX_MANIFEST_BYTES,
    in_dataset,
    is_marker,
    is_part,
    name_of,
    parts_of,
)
from services.watcher.recovery import LEDGER, SENT, Recovery
from shared.alerts import run_failed
from shared.config import Settings, load_settings
from shared.errors import CauceError, Conflict, DataError, NotFound
from shared.ids import new_run_id, now
from shared.layout import (
    BATCH,
    INCOMING,
    MANIFEST_MARKER,
    MARKERS,
    folder_key,
    input_key,
    job_key,
    part_key,
    rejected_key,
    spec_key,
)
from shared.messages import RunStage, ScoreFile
from shared.messaging import create_celery, send
from shared.pipeline import STAGES, TASKS
from shared.runs import create_run
from shared.storage import ObjectInfo, Store
from shared.text import visible
from shared.wake import wait_for_wake, wake_watcher

log = logging.getLogger(__name__)

LOCK = "cauce:watcher:lock"
# Batch prediction (issue 7): a file under batch/<pipeline>/ becomes one batch.run job.
BATCH_LEDGER = "cauce:ledger:batch"


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
        marked: set[str] = set()  # dataset folders holding a marker
        parts: dict[str, int] = {}  # dataset folders: how many parts each holds
        grown: set[str] = set()  # dataset folders with a part not seen before
        for item in self.store.list_objects(INCOMING):
            entry = f"{item.key}|{item.etag}|{item.modified}"
            if in_dataset(item.key):  # a part alone is never a run: only a marker starts one
                folder = folder_key(item.key)
                if is_marker(item.key):
                    marked.add(folder)
                    if entry not in self.seen:
                        run_id = self._start_dataset(item, entry, folder_of(item.key) or "")
                        started += [run_id] if run_id else []
                elif is_part(item.key):
                    parts[folder] = parts.get(folder, 0) + 1
                    if entry not in self.seen:
                        grown.add(folder)
                self.seen.add(entry)
                continue
            if entry in self.seen:
                continue
            try:
                pipeline = route(item.key)
            except DataError as exc:
                self._reject(item, entry, exc, pipeline=folder_of(item.key))
                pipeline = None
            run_id = self._start(item, entry, pipeline) if pipeline else None
            if run_id is not None:
                started.append(run_id)
            self.seen.add(entry)
        for folder in sorted(grown - marked):
            log.info(
                "%s holds %s part(s) and waits for %s: no run starts until a marker lands",
                visible(folder),
                parts[folder],
                " or ".join(MARKERS),
            )
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

    def _claim(self, entry: str) -> str | None:
        """The run id of a drop, claimed in the ledger; None if that run was started already."""
        self.broker.hsetnx(LEDGER, entry, new_run_id())
        claimed = self.broker.hget(LEDGER, entry)
        run_id = claimed.decode() if isinstance(claimed, bytes) else str(claimed)
        return None if self.broker.sismember(SENT, run_id) else run_id

    def _start(self, item: ObjectInfo, entry: str, pipeline: str) -> str | None:
        """Start the run for one drop unless the ledger shows it was started already."""
        run_id = self._claim(entry)
        if run_id is None:
            return None
        # Claimed but maybe not started (a watcher died here): every step below is idempotent.
        # run.json first, so the run's folder never shows without it; then the run's own copy.
        target = input_key(run_id, item.key.rsplit("/", 1)[-1])
        # Over S3's limit of one copy, ingest reads the drop itself if its ETag is unchanged.
        kept = target if item.size <= COPY_LIMIT else None
        create_run(
            self.store,
            options=run_options(self._metadata(item)),
            run_id=run_id,
            pipeline=pipeline,
            spec_text=self._spec(pipeline),
            source={**source_of(item), **({"input": kept} if kept else {})},
        )
        if kept:
            self._keep(item, kept)
        message = RunStage(run_id=run_id, pipeline=pipeline)
        send(self.app, TASKS[STAGES[0]], message, queue=STAGES[0])
        self.broker.sadd(SENT, run_id)
        log.info("run %s started for %s", run_id, item.key)
        return run_id

    def _start_dataset(self, marker: ObjectInfo, entry: str, pipeline: str) -> str | None:
        """Start the one run of the multi-part dataset a marker completes, unless the ledger
        shows it was started already; a dataset that cannot start is a failed run saying why."""
        folder = folder_key(marker.key)
        listing = list(self.store.list_objects(folder))  # every part landed before its marker
        manifest = part_key(folder, MANIFEST_MARKER)
        if marker.key != manifest and any(item.key == manifest for item in listing):
            log.info("%s left aside: %s counts", visible(marker.key), visible(manifest))
            return None
        run_id = self._claim(entry)
        if run_id is None:
            return None
        try:
            parts = parts_of(marker, listing, self._manifest(marker))
        except DataError as exc:
            self._reject(marker, entry, exc, pipeline=pipeline)
            return None
        names = [name_of(part.key) for part in parts]
        source = {
            **source_of(marker),
            "parts": [{"key": p.key, "etag": p.etag, "size": p.size} for p in parts],
            "inputs": [input_key(run_id, name) for name in names],
        }
        record = create_run(
            self.store,
            options=run_options(self._metadata(marker)),
            run_id=run_id,
            pipeline=pipeline,
            spec_text=self._spec(pipeline),
            source=source,
        )
        # A run recorded before a restart keeps the parts it recorded, whatever the folder holds.
        recorded = record["source"]
        for part, target in zip(recorded["parts"], recorded["inputs"], strict=True):
            self._keep(ObjectInfo(part["key"], part["etag"], part["size"]), target)
        send(
            self.app, TASKS[STAGES[0]], RunStage(run_id=run_id, pipeline=pipeline), queue=STAGES[0]
        )
        self.broker.sadd(SENT, run_id)
        log.info("run %s started for %s (%s parts)", run_id, visible(marker.key), len(parts))
        return run_id

    def _manifest(self, marker: ObjectInfo) -> bytes | None:
        """The listed version of a manifest marker's text (None for `_SUCCESS`); DataError when
        it is too big or was replaced before it could be read."""
        if name_of(marker.key) != MANIFEST_MARKER:
            return None
        if marker.size > MAX_MANIFEST_BYTES:
            raise DataError(
                f"{visible(marker.key)} is {marker.size} bytes; a manifest holds at most "
                f"{MAX_MANIFEST_BYTES}",
                field="dataset",
            )
        try:
            return self.store.get_bytes(marker.key, if_match=marker.etag)
        except (Conflict, NotFound):
            raise DataError(
                f"{visible(marker.key)} was replaced or removed before the watcher read it; "
                "the version that replaced it starts its own run",
                field="dataset",
            ) from None

    def _keep(self, item: ObjectInfo, target: str) -> None:
        """Copy exactly the listed version of the drop to the run's own input key; if it was
        replaced or removed since it was listed, ingest finds no copy and fails the run, saying
        so (a replacement is a drop of its own)."""
        if self.store.exists(target):
            return  # copied before a restart
        try:
            self.store.copy(item.key, target, if_match=item.etag)
        except (Conflict, NotFound):
            log.warning("%s changed before its run kept a copy", visible(item.key))

    def _metadata(self, item: ObjectInfo) -> dict[str, str]:
        """The listed version's metadata (its run's options); none if that version is gone."""
        try:
            return self.store.metadata(item.key, if_match=item.etag)
        except (Conflict, NotFound):
            return {}

    def _reject(
        self, item: ObjectInfo, entry: str, error: DataError, *, pipeline: str | None
    ) -> None:
        """Record a drop no pipeline can take as a failed run, with its reason in quarantine; the
        file stays where it was dropped."""
        run_id = self._claim(entry)
        if run_id is None:
            return
        reason = str(error)
        create_run(
            self.store,
            run_id=run_id,
            pipeline=pipeline or "",
            spec_text=None,
            source=source_of(item),
            rejected=reason,
        )
        self.store.put_json(
            rejected_key(pipeline, run_id),
            {"source": item.key, "etag": item.etag, "error": reason, "run_id": run_id},
        )
        self.broker.sadd(SENT, run_id)
        log.warning("run %s rejected %s: %s", run_id, visible(item.key), reason)
        run_failed(
            self.broker, pipeline=pipeline or "", run_id=run_id, stage="watcher", reason=reason
        )

    def _spec(self, pipeline: str) -> str | None:
        """The pipeline's spec text at the moment of the drop (snapshotted into the run)."""
        try:
            return self.store.get_bytes(spec_key(pipeline)).decode("utf-8", "replace")
        except NotFound:
            return None


def hold_lock(broker: redis.Redis, token: str, seconds: float) -> bool:
    """Take or renew the single-active-watcher lock."""
    if broker.set(LOCK, token, nx=True, px=int(seconds * 1000)):
        return True
    if broker.get(LOCK) == token.encode():
        broker.pexpire(LOCK, int(seconds * 1000))
        return True
    return False


def watch(settings: Settings, stop: threading.Event) -> None:
    """Scan `incoming/` and recover stalled runs until `stop` is set; only the lock holder works.
    Between scans it waits CAUCE_WATCH_POLL_SECONDS, or less when `cauce submit` or an object-store
    event (POST /events) wakes it."""
    store = Store.from_settings(settings)
    broker = redis.Redis.from_url(settings.broker_url)
    # The wait for a wake blocks for up to a poll: longer than redis-py's default read timeout.
    waits = redis.Redis.from_url(
        settings.broker_url, socket_timeout=settings.watch_poll_seconds + 5
    )
    app = create_celery(settings, "watcher")
    watcher = Watcher(store=store, broker=broker, app=app)
    recovery = Recovery(store=store, broker=broker, app=app, settings=settings)
    token = uuid.uuid4().hex
    # drift from the prediction log, on a thread of its own, by whichever watcher holds the lock
    start_monitoring(settings, stop, active=lambda: broker.get(LOCK) == token.encode())
    store_ready, next_sweep, holding = False, 0.0, False
    while not stop.is_set():
        try:
            if not store_ready:
                store.ensure_bucket()
                store_ready = True
            holding = hold_lock(broker, token, seconds=max(10.0, 5 * settings.watch_poll_seconds))
            if holding:
                recovery.ensure_ledger()  # before scanning: a lost ledger must not rerun drops
                for run_id in watcher.scan():
                    recovery.track(run_id)
                watcher.scan_batch()
                if time.monotonic() >= next_sweep:
                    recovery.sweep()
                    next_sweep = time.monotonic() + max(1.0, settings.stale_seconds / 4)
        except (CauceError, redis.RedisError, OSError) as exc:
            log.warning("watcher: %s; trying again", exc)
        if not holding:  # a standby leaves the wakes to the active watcher
            stop.wait(settings.watch_poll_seconds)
            continue
        try:  # a submit or an event (POST /events) wakes it at once
            wait_for_wake(waits, settings.watch_poll_seconds)
        except (redis.RedisError, OSError):
            stop.wait(settings.watch_poll_seconds)


def main() -> None:
    """Run the watcher until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = load_settings()
    start_alerts(settings, stop)  # posts alerts on a thread of its own: never blocks the scans
    if settings.events_token is not None and settings.events_token.get_secret_value():
        serve_events(
            Events(
                bucket=settings.bucket,
                token=settings.events_token.get_secret_value().encode(),
                wake=lambda: wake_watcher(settings.broker_url),
            ),
            host=settings.events_host,
            port=settings.events_port,
            idle_seconds=settings.body_timeout_seconds,
        )
    watch(settings, stop)


if __name__ == "__main__":
    main()
