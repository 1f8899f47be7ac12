"""Hostile drops against the real watcher, SeaweedFS and Redis: a key that cannot be a pipeline's
is never a run of a lookalike pipeline, is never silently ignored, and is never deleted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from services.console import create_app
from services.ingest.tasks import ingest, quarantine
from services.watcher.watcher import Watcher
from shared.config import Settings
from shared.errors import Conflict
from shared.messages import RunStage
from shared.messaging import create_celery
from shared.runs import create_run, describe_run, list_runs
from shared.stack.local import child_env
from shared.stage import StageRunner
from shared.storage import ObjectInfo, Store
from tests.integration.serve_support import running
from tests.integration.stage_support import FakeTask

CAUCE = str(Path(sys.executable).parent / "cauce")
TABLE = b"x,y\n1,0\n2,1\n"

# Keys no pipeline can take, and what the recorded reason must say about each.
UNROUTED = {
    "incoming/p1\n/train.csv": "pipeline name 'p1\\n' is not allowed",
    "incoming/a b/train.csv": "pipeline name 'a b' is not allowed",
    "incoming/%2e%2e/train.csv": "pipeline name '%2e%2e' is not allowed",
    "incoming/.hidden/train.csv": "pipeline name '.hidden' is not allowed",
    "incoming/train.csv": "move it to incoming/<pipeline>/train.csv",
}


def _watcher(settings: Settings, store: Store) -> Watcher:
    broker = redis.Redis.from_url(settings.broker_url)
    return Watcher(store=store, broker=broker, app=create_celery(settings, "test-watcher"))


class ListedEarlier(Store):
    """The test's bucket, but listing what it held a moment ago (a file was replaced since)."""

    def __init__(self, store: Store, listed: list[ObjectInfo]) -> None:
        super().__init__(store.client, store.bucket)
        self.listed = listed

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """What the earlier listing held under `prefix`."""
        return iter([item for item in self.listed if item.key.startswith(prefix)])


def _ingest(settings: Settings, store: Store, run_id: str) -> dict:
    """Run the real ingest stage of the run (no broker: the next stage is only recorded)."""
    runner = StageRunner(
        stage="ingest", store=store, settings=settings, work=ingest, on_failure=quarantine
    )
    runner(FakeTask(), RunStage(run_id=run_id, pipeline="churn"))
    return describe_run(store, run_id)


@pytest.fixture
def console(settings: Settings, store: Store) -> Iterator[str]:
    """The console served over HTTP on a free port; yields its base URL."""
    with running(create_app(settings, store)) as url:
        yield url


def test_a_run_keeps_its_own_copy_of_exactly_the_version_listed(
    settings: Settings, store: Store
) -> None:
    key = "incoming/churn/x.csv"
    first = store.put_bytes(key, TABLE, metadata={"cauce-force": "true"})
    (run_id,) = _watcher(settings, store).scan()
    record = store.get_json(f"runs/{run_id}/run.json")
    assert record["source"]["etag"] == first and record["options"]["force"] is True
    store.put_bytes(key, b"x,y\n5,6\n7,8\n")  # replaced after the run was recorded
    assert store.get_bytes(record["source"]["input"]) == TABLE
    # What the copy relies on: the store refuses a read or a copy of a version that is gone.
    with pytest.raises(Conflict):
        store.get_bytes(key, if_match=first)
    with pytest.raises(Conflict):
        store.copy(key, "runs/elsewhere/input/x.csv", if_match=first)


def test_a_version_replaced_before_the_watcher_copied_it_fails_its_run_with_the_reason(
    settings: Settings, store: Store
) -> None:
    key = "incoming/churn/x.csv"
    store.put_bytes(key, TABLE)
    listed = list(store.list_objects("incoming/"))
    store.put_bytes(key, b"x,y\n5,6\n7,8\n")  # between the listing and the copy
    (run_id,) = _watcher(settings, ListedEarlier(store, listed)).scan()
    run = _ingest(settings, store, run_id)
    assert run["state"] == "failed"
    assert "was replaced or removed before this run could keep a copy" in run["error"]
    (second,) = _watcher(settings, store).scan()  # the replacement: a drop of its own
    assert describe_run(store, second)["state"] == "queued"


def test_a_run_recorded_before_runs_kept_a_copy_reads_only_the_version_that_started_it(
    settings: Settings, store: Store
) -> None:
    key = "incoming/churn/x.csv"
    etag = store.put_bytes(key, TABLE)
    run_id = "01JOLDRUN00000000000000000"
    source = {"key": key, "etag": etag, "size": len(TABLE), "modified": ""}  # no "input"
    create_run(store, run_id=run_id, pipeline="churn", source=source, spec_text=None)
    store.put_bytes(key, b"x,y\n5,6\n7,8\n")
    run = _ingest(settings, store, run_id)
    assert run["state"] == "failed" and "was replaced after this run started" in run["error"]


def test_a_pipeline_name_ending_in_a_newline_starts_no_run_of_that_pipeline(
    settings: Settings, store: Store
) -> None:
    store.put_bytes("incoming/p1\n/train.csv", TABLE)
    assert _watcher(settings, store).scan() == []  # nothing queued for ingest
    (run,) = list_runs(store)
    assert run["pipeline"] != "p1\n" and run["state"] == "failed"
    assert int(redis.Redis.from_url(settings.broker_url).llen("ingest")) == 0


def test_drops_no_pipeline_can_take_are_failed_runs_with_the_reason_in_quarantine(
    settings: Settings, store: Store
) -> None:
    for key in UNROUTED:
        store.put_bytes(key, TABLE)
    store.put_bytes("incoming/.DS_Store", b"hidden files are not drops")
    watcher = _watcher(settings, store)
    assert watcher.scan() == []
    assert watcher.scan() == [] and _watcher(settings, store).scan() == []  # recorded once
    runs = {run["source"]: run for run in list_runs(store)}
    assert sorted(runs) == sorted(UNROUTED)
    for key, reason in UNROUTED.items():
        run = runs[key]
        assert run["state"] == "failed" and reason in run["error"], run
        assert {stage["state"] for stage in run["stages"]} == {"skipped"}
        quarantined = store.get_json(f"quarantine/_unrouted/{run['run_id']}/reason.json")
        assert quarantined["source"] == key and reason in quarantined["error"]
        assert store.get_bytes(key) == TABLE  # the file stays where it was dropped
    assert int(redis.Redis.from_url(settings.broker_url).llen("ingest")) == 0


def test_a_file_name_with_a_direction_override_is_quarantined_in_its_pipeline(
    settings: Settings, store: Store
) -> None:
    key = "incoming/churn/invoice\u202ecsv.exe"
    store.put_bytes(key, TABLE)
    assert _watcher(settings, store).scan() == []
    (run,) = list_runs(store)
    assert run["pipeline"] == "churn" and run["state"] == "failed"
    assert "invoice\\u202ecsv.exe" in run["error"] and "\u202e" not in run["error"]
    assert store.get_json(f"quarantine/churn/{run['run_id']}/reason.json")["source"] == key


def test_rejected_drops_are_listed_by_cauce_runs_and_the_console(
    settings: Settings, store: Store, console: str
) -> None:
    store.put_bytes("incoming/a b/train.csv", TABLE)
    store.put_bytes("incoming/churn/invoice\u202ecsv.exe", TABLE)
    _watcher(settings, store).scan()
    listed = subprocess.run(
        [CAUCE, "runs"], env=child_env(settings), capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and all(" failed " in line for line in lines), lines
    assert "pipeline name 'a b' is not allowed" in listed.stdout
    assert "invoice\\u202ecsv.exe" in listed.stdout and "\u202e" not in listed.stdout

    page = requests.get(f"{console}/runs", timeout=30).text
    assert page.count('class="run-row"') == 2
    assert "is not allowed" in page and "\u202e" not in page
    (rejected,) = [r for r in list_runs(store) if r["pipeline"] == "churn"]
    detail = requests.get(f"{console}/runs/{rejected['run_id']}", timeout=30).text
    assert "invoice\\u202ecsv.exe" in detail and "\u202e" not in detail
    start = requests.get(f"{console}/start", timeout=30).text
    assert "a b" not in start  # not offered as a pipeline to start a run of
