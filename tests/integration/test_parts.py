"""Multi-part datasets against the real watcher, SeaweedFS and Redis: parts start nothing on their
own; a `_SUCCESS` or `_manifest.json` marker starts exactly one run of the whole folder, which
keeps its own copy of each part."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from services.watcher.recovery import Recovery
from services.watcher.watcher import Watcher
from shared.config import Settings
from shared.messaging import create_celery
from shared.runs import list_runs
from shared.stack.local import child_env
from shared.storage import Store

CAUCE = str(Path(sys.executable).parent / "cauce")
FOLDER = "incoming/churn/2026-11-27/"
PARTS = {"part-00001.csv": b"x,y\n3,1\n4,0\n", "part-00000.csv": b"x,y\n1,0\n2,1\n"}


def _watcher(settings: Settings, store: Store) -> Watcher:
    broker = redis.Redis.from_url(settings.broker_url)
    return Watcher(store=store, broker=broker, app=create_celery(settings, "test-watcher"))


def _queued(settings: Settings) -> int:
    return int(redis.Redis.from_url(settings.broker_url).llen("ingest"))


def _drop_parts(store: Store, parts: dict[str, bytes] = PARTS) -> dict[str, str]:
    """Upload the parts and the files Spark and Hadoop write beside them; their ETags by name."""
    etags = {name: store.put_bytes(FOLDER + name, data) for name, data in parts.items()}
    store.put_bytes(FOLDER + ".part-00000.csv.crc", b"checksum")
    store.put_bytes(FOLDER + "_committed_123", b"{}")
    store.put_bytes(FOLDER + "_temporary/0/part-00002.csv", b"x,y\n9,9\n")
    return etags


def test_parts_start_nothing_until_their_success_marker_lands_then_exactly_one_run(
    settings: Settings, store: Store
) -> None:
    etags = _drop_parts(store)
    watcher = _watcher(settings, store)
    assert watcher.scan() == [] and list_runs(store) == [] and _queued(settings) == 0

    marker = store.put_bytes(FOLDER + "_SUCCESS", b"")
    (run_id,) = watcher.scan()
    assert watcher.scan() == [] and _watcher(settings, store).scan() == []  # a restart too
    (run,) = list_runs(store)
    assert (run["source"], run["state"], run["pipeline"]) == (
        FOLDER + "_SUCCESS",
        "queued",
        "churn",
    )
    assert _queued(settings) == 1

    source = store.get_json(f"runs/{run_id}/run.json")["source"]
    assert (source["key"], source["etag"]) == (FOLDER + "_SUCCESS", marker)
    names = ["part-00000.csv", "part-00001.csv"]  # name order, hidden and nested files left out
    assert source["parts"] == [
        {"key": FOLDER + name, "etag": etags[name], "size": len(PARTS[name])} for name in names
    ]
    assert source["inputs"] == [f"runs/{run_id}/input/{name}" for name in names]
    assert [store.get_bytes(key) for key in source["inputs"]] == [PARTS[n] for n in names]
    assert "input" not in source


def test_a_manifest_takes_the_parts_it_names_in_its_order(settings: Settings, store: Store) -> None:
    etags = _drop_parts(store)
    store.put_bytes(FOLDER + "stray.csv", b"x,y\n5,5\n")  # not named: left out
    size = len(PARTS["part-00000.csv"])
    manifest = {"parts": ["part-00001.csv", {"name": "part-00000.csv", "size": size}]}
    store.put_bytes(FOLDER + "_manifest.json", json.dumps(manifest).encode())
    (run_id,) = _watcher(settings, store).scan()
    source = store.get_json(f"runs/{run_id}/run.json")["source"]
    assert [p["key"] for p in source["parts"]] == [
        FOLDER + "part-00001.csv",
        FOLDER + "part-00000.csv",
    ]
    assert [p["etag"] for p in source["parts"]] == [
        etags["part-00001.csv"],
        etags["part-00000.csv"],
    ]
    assert [store.get_bytes(key) for key in source["inputs"]] == [
        PARTS["part-00001.csv"],
        PARTS["part-00000.csv"],
    ]


def test_a_manifest_naming_a_missing_part_fails_its_run_naming_the_part(
    settings: Settings, store: Store
) -> None:
    _drop_parts(store)
    manifest = {"parts": ["part-00000.csv", "part-00002.csv", "part-00001.csv"]}
    store.put_bytes(FOLDER + "_manifest.json", json.dumps(manifest).encode())
    watcher = _watcher(settings, store)
    assert watcher.scan() == [] and watcher.scan() == []
    (run,) = list_runs(store)
    assert run["state"] == "failed" and run["source"] == FOLDER + "_manifest.json"
    assert "part-00002.csv" in run["error"] and "part-00001.csv" not in run["error"]
    assert "upload them, then upload the manifest again" in run["error"]
    reason = store.get_json(f"quarantine/churn/{run['run_id']}/reason.json")
    assert "part-00002.csv" in reason["error"]
    assert _queued(settings) == 0


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"parts: [a.csv]", "is not JSON"),
        (b'{"parts": []}', "lists no parts"),
        (b'{"parts": ["../a.csv"]}', "named by its file name"),
        (b'{"parts": [{"name": "part-00000.csv", "size": 1}]}', "is 12 bytes, but"),
        (b'{"parts": ["part-00000.csv", "part-00000.csv"]}', "twice"),
    ],
)
def test_a_manifest_that_cannot_start_a_run_says_what_to_fix(
    settings: Settings, store: Store, manifest: bytes, reason: str
) -> None:
    _drop_parts(store)
    store.put_bytes(FOLDER + "_manifest.json", manifest)
    assert _watcher(settings, store).scan() == []
    (run,) = list_runs(store)
    assert run["state"] == "failed" and reason in run["error"], run["error"]


def test_a_success_marker_without_parts_or_outside_a_dataset_folder_fails_saying_why(
    settings: Settings, store: Store
) -> None:
    store.put_bytes("incoming/churn/empty/_SUCCESS", b"")
    store.put_bytes("incoming/churn/_SUCCESS", b"")
    assert _watcher(settings, store).scan() == []
    runs = {run["source"]: run for run in list_runs(store)}
    assert (
        "holds no parts beside its _SUCCESS marker"
        in runs["incoming/churn/empty/_SUCCESS"]["error"]
    )
    outside = runs["incoming/churn/_SUCCESS"]["error"]
    assert "in a folder of their own: incoming/churn/<dataset>/" in outside


def test_a_folder_without_a_marker_is_logged_as_waiting_once(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    _drop_parts(store)
    watcher = _watcher(settings, store)
    with caplog.at_level(logging.INFO, logger="services.watcher.watcher"):
        watcher.scan()
        watcher.scan()
    waiting = [r.getMessage() for r in caplog.records if "waits for" in r.getMessage()]
    assert waiting == [
        f"{FOLDER} holds 2 part(s) and waits for _SUCCESS or _manifest.json: "
        "no run starts until a marker lands"
    ]
    assert list_runs(store) == []


def test_a_broker_that_lost_its_ledger_does_not_rerun_a_dataset(
    settings: Settings, store: Store
) -> None:
    _drop_parts(store)
    store.put_bytes(FOLDER + "_SUCCESS", b"")
    watcher = _watcher(settings, store)
    (run_id,) = watcher.scan()
    broker = redis.Redis.from_url(settings.broker_url)
    broker.flushdb()
    Recovery(store=store, broker=broker, app=watcher.app, settings=settings).ensure_ledger()
    assert _watcher(settings, store).scan() == []
    time.sleep(1.1)  # a drop is told apart by its time, to the second
    store.put_bytes(FOLDER + "_SUCCESS", b"")  # the marker again: a new drop of the dataset
    (second,) = _watcher(settings, store).scan()
    assert second != run_id and len(list_runs(store)) == 2


def test_cauce_submit_of_a_folder_uploads_its_parts_then_a_manifest_that_starts_one_run(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "spark-out"
    folder.mkdir()
    for name, data in PARTS.items():
        (folder / name).write_bytes(data)
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".part-00000.csv.crc").write_bytes(b"checksum")
    done = subprocess.run(
        [CAUCE, "submit", str(folder), "-p", "churn", "--no-cache"],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    marker = "incoming/churn/spark-out/_manifest.json"
    assert f"uploaded 2 parts\nuploaded s3://{store.bucket}/{marker}" in done.stderr
    (run_id,) = _watcher(settings, store).scan()
    record = store.get_json(f"runs/{run_id}/run.json")
    assert record["source"]["key"] == marker and record["options"]["cache"] is False
    names = ["part-00000.csv", "part-00001.csv"]
    assert [p["key"] for p in record["source"]["parts"]] == [
        f"incoming/churn/spark-out/{name}" for name in names
    ]
    assert store.get_json(marker) == {
        "parts": [{"name": name, "size": len(PARTS[name])} for name in names]
    }


def test_cauce_submit_of_several_files_asks_for_the_dataset_name(
    settings: Settings, tmp_path: Path
) -> None:
    paths = []
    for name, data in PARTS.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    done = subprocess.run(
        [CAUCE, "submit", *paths, "-p", "churn"],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "several files are one dataset: name it with --dataset NAME" in done.stderr


def test_with_both_markers_in_a_folder_the_manifest_counts(
    settings: Settings, store: Store
) -> None:
    _drop_parts(store)
    store.put_bytes(FOLDER + "_SUCCESS", b"")
    store.put_bytes(FOLDER + "_manifest.json", b'{"parts": ["part-00001.csv"]}')
    (run_id,) = _watcher(settings, store).scan()
    (run,) = list_runs(store)
    assert run["source"] == FOLDER + "_manifest.json"
    source = store.get_json(f"runs/{run_id}/run.json")["source"]
    assert [p["key"] for p in source["parts"]] == [FOLDER + "part-00001.csv"]
