"""Recovery: the bucket and the heartbeats are enough to finish what a lost worker or queue dropped.

Every run that has not ended is checked now and then. Work that should be happening but shows no
fresh heartbeat and has no message waiting in its queue is sent again; every task is idempotent,
so a copy sent by mistake only repeats a check.

Every age is the store's clock now less a time the store's clock gave (an object's LastModified,
or a stamp a worker took from the store), so no process's own clock has to agree with another's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Celery

from shared.config import Settings
from shared.errors import NotFound
from shared.heartbeat import last_beat
from shared.layout import run_key, stage_key
from shared.messages import RunStage, RunTrial
from shared.messaging import send, waiting
from shared.pipeline import TASKS
from shared.runs import describe_run, is_terminal, list_run_ids, read_run, read_status
from shared.storage import Store
from shared.trials import due_trials, last_sign, trial_times

log = logging.getLogger(__name__)

LEDGER = "cauce:ledger:incoming"  # drop (key|etag|time) -> run id
SENT = "cauce:ledger:started"  # run ids whose ingest message was sent
ACTIVE = "cauce:runs:active"  # runs not yet ended
EPOCH = "cauce:runs:epoch"  # present while the broker still holds the three above


class Recovery:
    """Finds stalled work of unfinished runs and sends it again."""

    def __init__(self, *, store: Store, broker: redis.Redis, app: Celery, settings: Settings):
        self.store, self.broker, self.app, self.settings = store, broker, app, settings

    def track(self, run_id: str) -> None:
        """Watch a new run until it ends."""
        self.broker.sadd(ACTIVE, run_id)

    def ensure_ledger(self) -> None:
        """Rebuild the ledgers from the bucket if the broker lost them (a restart without data)."""
        if self.broker.exists(EPOCH):
            return
        run_ids = list_run_ids(self.store)
        log.warning(
            "the broker holds no ledger; rebuilding it from %s runs in the bucket", len(run_ids)
        )
        for run_id in run_ids:
            try:
                source = read_run(self.store, run_id)["source"]
            except NotFound:
                continue
            entry = f"{source['key']}|{source['etag']}|{source.get('modified', '')}"
            self.broker.hset(LEDGER, entry, run_id)
            self.broker.sadd(SENT, run_id)
            self.broker.sadd(ACTIVE, run_id)  # the sweep drops those that have ended
        self.broker.set(EPOCH, time.time())

    def sweep(self) -> list[str]:
        """Check every unfinished run once; return what was sent again."""
        self.ensure_ledger()
        resent: list[str] = []
        for raw in self.broker.smembers(ACTIVE):
            run_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                view = describe_run(self.store, run_id)
            except NotFound:
                self.broker.srem(ACTIVE, run_id)
                continue
            if is_terminal(view):
                self.broker.srem(ACTIVE, run_id)
                continue
            resent += self.check(view)
        return resent

    def check(self, view: dict[str, Any]) -> list[str]:
        """Send again whatever of this run has stalled."""
        stages = view["stages"]
        index = next(i for i, s in enumerate(stages) if s["state"] not in ("succeeded", "skipped"))
        stage, message = stages[index], RunStage(run_id=view["run_id"], pipeline=view["pipeline"])
        run_id = message.run_id
        if stage["state"] == "pending":
            # Waiting since the previous stage wrote its status (last, as it ended), or the run
            # began.
            since = self.store.modified(
                stage_key(run_id, stages[index - 1]["stage"], "status.json")
                if index
                else run_key(run_id)
            )
        else:
            status = read_status(self.store, run_id, stage["stage"]) or {}
            if stage["stage"] == "train" and "trials_planned" in status:
                return self.check_trials(message)
            beat = last_beat(self.store, stage_key(run_id, stage["stage"], "heartbeat.json"))
            since = beat or self.store.modified(stage_key(run_id, stage["stage"], "status.json"))
        quiet = self.store.server_time() - since
        if quiet < self.settings.stale_seconds or self.queued(stage["stage"], message.run_id):
            return []
        return [self.send(TASKS[stage["stage"]], stage["stage"], message)]

    def check_trials(self, message: RunStage) -> list[str]:
        """Resend due trials that nobody runs, or the selection once every trial has a result."""
        plan = self.store.get_json(stage_key(message.run_id, "train", "plan.json"))
        count, parallel = len(plan["trials"]), plan["parallelism"]
        times = trial_times(self.store, message.run_id)
        now = self.store.server_time()
        if len(times.results) == count:
            beat = last_beat(self.store, stage_key(message.run_id, "train", "heartbeat.json"))
            last = max(beat or 0.0, *times.results.values())
            if now - last < self.settings.stale_seconds:
                return []
            if self.queued("train", message.run_id, task="train.select"):
                return []
            return [self.send("train.select", "train", message)]
        sent = []
        planned = float(plan.get("created_at", 0.0))  # the store's time (train stamps it so)
        for index in due_trials(times.results, parallelism=parallel, count=count):
            last = last_sign(times, index, parallelism=parallel, planned=planned)
            if now - last < self.settings.stale_seconds:
                continue
            if not self.queued("train", message.run_id, task="train.trial", index=index):
                trial = RunTrial(**message.model_dump(), index=index)
                sent.append(self.send("train.trial", "train", trial))
        return sent

    def queued(
        self, queue: str, run_id: str, *, task: str | None = None, index: int | None = None
    ) -> bool:
        """Whether a message for this run (of this task, for this trial) waits in the queue."""
        return any(
            work.get("run_id") == run_id
            and task in (None, work.get("task"))
            and index in (None, work.get("index"))
            for work in waiting(self.broker, queue)
        )

    def send(self, task: str, queue: str, message: RunStage) -> str:
        """Send a task again and say so."""
        trial = {"index": message.index} if isinstance(message, RunTrial) else {}
        log.warning("recovery: sending %s again for run %s %s", task, message.run_id, trial)
        send(self.app, task, message, queue=queue)
        return f"{task} {message.run_id} {trial.get('index', '')}".strip()
