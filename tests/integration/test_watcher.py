"""The watcher against real S3 and Redis: one run per drop, also across restarts and re-scans."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import redis

from services.watcher.recovery import Recovery
from services.watcher.watcher import LOCK, Watcher, watch
from shared.client.submit import await_run_id, submit_file
from shared.config import Settings
from shared.messages import RunStage, RunTrial
from shared.messaging import create_celery, send, waiting
from shared.runs import create_run, list_runs, write_status
from shared.storage import Store

RUN = "01JTRIALRUN000000000000000"


def _watcher(settings: Settings, store: Store) -> Watcher:
    broker = redis.Redis.from_url(settings.broker_url)
    return Watcher(store=store, broker=broker, app=create_celery(settings, "test-watcher"))


def _queued(settings: Settings) -> int:
    return int(redis.Redis.from_url(settings.broker_url).llen("ingest"))


def test_each_drop_starts_exactly_one_run(settings: Settings, store: Store) -> None:
    store.put_bytes("incoming/churn/a.csv", b"x,y\n1,2\n")
    store.put_bytes("incoming/churn/b.csv", b"x,y\n3,4\n")
    store.put_bytes("incoming/stray.csv", b"no pipeline folder")
    store.put_bytes("incoming/churn/.hidden", b"ignored")
    watcher = _watcher(settings, store)
    assert len(watcher.scan()) == 2
    assert watcher.scan() == []
    restarted = _watcher(settings, store)  # a new process: same ledger, nothing new
    assert restarted.scan() == []
    runs = {r["source"]: r for r in list_runs(store)}
    stray = runs.pop("incoming/stray.csv")  # no pipeline: recorded as a run that failed at once
    assert stray["state"] == "failed" and "move it to incoming/<pipeline>/" in stray["error"]
    assert sorted(runs) == ["incoming/churn/a.csv", "incoming/churn/b.csv"]
    assert all(r["pipeline"] == "churn" and r["state"] == "queued" for r in runs.values())
    assert _queued(settings) == 2


def test_the_pipeline_spec_is_snapshotted_into_the_run(settings: Settings, store: Store) -> None:
    store.put_bytes("pipelines/churn.yaml", b"target: churned\n")
    store.put_bytes("incoming/churn/a.csv", b"x,churned\n1,0\n")
    watcher = _watcher(settings, store)
    (run_id,) = watcher.scan()
    assert store.get_json(f"runs/{run_id}/run.json")["spec"] == "target: churned\n"


def test_a_watcher_that_died_after_claiming_still_starts_the_run(
    settings: Settings, store: Store
) -> None:
    store.put_bytes("incoming/churn/a.csv", b"x,y\n1,2\n")
    item = next(store.list_objects("incoming/"))
    broker = redis.Redis.from_url(settings.broker_url)
    broker.hset(
        "cauce:ledger:incoming",
        f"{item.key}|{item.etag}|{item.modified}",
        "01JCLAIMED0000000000000000",
    )
    assert _watcher(settings, store).scan() == ["01JCLAIMED0000000000000000"]
    assert _queued(settings) == 1


def test_a_file_dropped_under_batch_queues_one_scoring_job(
    settings: Settings, store: Store
) -> None:
    store.put_bytes("batch/iris/rows.csv", b"sepal_length\n1\n")
    store.put_bytes("batch/stray.csv", b"no pipeline folder")
    watcher = _watcher(settings, store)
    assert watcher.scan() == []  # not a run
    (job_id,) = watcher.scan_batch()
    assert watcher.scan_batch() == [] and _watcher(settings, store).scan_batch() == []
    status = store.get_json(f"predictions/iris/{job_id}/status.json")
    assert (status["state"], status["source"]) == ("queued", "batch/iris/rows.csv")
    assert int(redis.Redis.from_url(settings.broker_url).llen("batch")) == 1
    assert list_runs(store) == []


def test_a_broker_that_lost_its_ledger_does_not_rerun_old_drops(
    settings: Settings, store: Store
) -> None:
    store.put_bytes("incoming/churn/a.csv", b"x,y\n1,2\n")
    watcher = _watcher(settings, store)
    (run_id,) = watcher.scan()
    broker = redis.Redis.from_url(settings.broker_url)
    broker.flushdb()  # a broker restarted without its data (this test's database)
    recovery = Recovery(store=store, broker=broker, app=watcher.app, settings=settings)
    recovery.ensure_ledger()
    assert _watcher(settings, store).scan() == []
    store.put_bytes("incoming/churn/b.csv", b"x,y\n3,4\n")
    assert len(_watcher(settings, store).scan()) == 1
    assert broker.sismember("cauce:runs:active", run_id)


def _recovery(settings: Settings, store: Store) -> Recovery:
    broker = redis.Redis.from_url(settings.broker_url)
    app = create_celery(settings, "test-recovery")
    return Recovery(store=store, broker=broker, app=app, settings=settings)


def _tuning_run(store: Store, *, trials: int) -> None:
    """A run whose train stage planned `trials` trials, all due at once, long ago."""
    create_run(store, run_id=RUN, pipeline="churn", source={"key": "x"}, spec_text=None)
    for stage in ("ingest", "preprocess"):
        write_status(store, RUN, stage, state="succeeded", started="2024-01-01T00:00:00+00:00")
    write_status(
        store,
        RUN,
        "train",
        state="running",
        started="2024-01-01T00:00:00+00:00",
        trials_planned=trials,
        parallelism=trials,
    )
    plan = {"trials": [{"index": i} for i in range(trials)], "parallelism": trials, "created_at": 0}
    store.put_json(f"runs/{RUN}/train/plan.json", plan)


def test_a_queued_trial_is_not_sent_again_and_no_other_index_passes_for_it(
    settings: Settings, store: Store
) -> None:
    _tuning_run(store, trials=12)
    recovery = _recovery(settings, store)
    queued = RunTrial(run_id=RUN, pipeline="churn", index=11)
    send(recovery.app, "train.trial", queued, queue="train")
    store.put_json(f"runs/{RUN}/train/trials/00000.json", {"state": "succeeded"})

    message = RunStage(run_id=RUN, pipeline="churn")
    resent = recovery.check_trials(message)
    assert resent == [f"train.trial {RUN} {i}" for i in range(1, 11)]  # 1 is not taken for 11
    assert recovery.check_trials(message) == []
    waiting_trials = [work["index"] for work in waiting(recovery.broker, "train")]
    assert sorted(waiting_trials) == list(range(1, 12))  # each due trial waits once


def test_a_run_whose_first_message_waits_in_its_queue_is_left_alone(
    settings: Settings, store: Store
) -> None:
    store.put_bytes("incoming/churn/a.csv", b"x,y\n1,2\n")
    (run_id,) = _watcher(settings, store).scan()
    recovery = _recovery(settings.model_copy(update={"stale_seconds": 0.01}), store)
    recovery.track(run_id)
    assert recovery.sweep() == []  # ingest.run waits in the queue
    redis.Redis.from_url(settings.broker_url).delete("ingest")  # the broker lost it
    assert recovery.sweep() == [f"ingest.run {run_id}"]
    assert _queued(settings) == 1


def test_a_submit_wakes_the_watcher_instead_of_waiting_for_its_poll(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    slow = settings.model_copy(update={"watch_poll_seconds": 30.0})
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(slow, stop), daemon=True)
    thread.start()
    try:
        broker = redis.Redis.from_url(settings.broker_url)
        deadline = time.monotonic() + 30
        while broker.get(LOCK) is None:  # its first scan is under way, the next one 30 s away
            assert time.monotonic() < deadline, "the watcher never took its lock"
            time.sleep(0.1)
        time.sleep(1)
        table = tmp_path / "woken.csv"
        table.write_text("x,y\n1,2\n3,4\n")
        upload = submit_file(store, table, pipeline="woken", broker_url=settings.broker_url)
        started = time.monotonic()
        run_id = await_run_id(store, upload, timeout=10)
        assert run_id is not None, "no run within 10 s of the submit (the poll is 30 s)"
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join(timeout=40)
