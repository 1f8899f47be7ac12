"""The watcher against real S3 and Redis: one run per drop, also across restarts and re-scans."""

from __future__ import annotations

import redis

from services.watcher.recovery import Recovery
from services.watcher.watcher import Watcher
from shared.config import Settings
from shared.messaging import create_celery
from shared.runs import list_runs
from shared.storage import Store


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
    runs = list_runs(store)
    assert sorted(r["source"] for r in runs) == ["incoming/churn/a.csv", "incoming/churn/b.csv"]
    assert all(r["pipeline"] == "churn" and r["state"] == "queued" for r in runs)
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
