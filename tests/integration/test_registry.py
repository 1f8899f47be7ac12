"""The registry against a real S3 server: immutable versions, compare-and-swap aliases, history."""

from __future__ import annotations

import hashlib
import threading

import pytest

from shared.errors import DataError
from shared.registry import (
    alias_history,
    get_alias,
    list_versions,
    load_version,
    move_alias,
    register_version,
)
from shared.storage import Store

KEY = b"registry-test-key"


def test_versions_are_numbered_and_idempotent_per_run(store: Store) -> None:
    first = register_version(
        store, "p", run_id="RUN1", model=b"one", meta={"task": "regression"}, signing_key=KEY
    )
    again = register_version(
        store, "p", run_id="RUN1", model=b"one", meta={"task": "regression"}, signing_key=KEY
    )
    second = register_version(store, "p", run_id="RUN2", model=b"two", meta={}, signing_key=KEY)
    assert (first["version"], again["version"], second["version"]) == (1, 1, 2)
    assert [v["version"] for v in list_versions(store, "p")] == [1, 2]
    record, model = load_version(store, "p", 2, signing_key=KEY)
    assert model == b"two" and record["run_id"] == "RUN2"


def test_concurrent_registrations_get_distinct_versions(store: Store) -> None:
    results: list[int] = []

    def register(index: int) -> None:
        record = register_version(
            store, "p", run_id=f"RUN{index}", model=b"m", meta={}, signing_key=KEY
        )
        results.append(record["version"])

    threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2, 3, 4, 5, 6]


def _refused(store: Store, key: bytes = KEY) -> str:
    with pytest.raises(DataError) as caught:
        load_version(store, "p", 1, signing_key=key)
    return str(caught.value)


def test_a_tampered_artifact_is_refused(store: Store) -> None:
    register_version(store, "p", run_id="RUN1", model=b"good", meta={}, signing_key=KEY)
    store.put_bytes("models/p/versions/1/model.skops", b"evil")
    assert "model.skops does not match its signed manifest" in _refused(store)


def test_a_rewritten_manifest_or_another_key_is_refused(store: Store) -> None:
    register_version(store, "p", run_id="RUN1", model=b"good", meta={}, signing_key=KEY)
    assert "signature does not match" in _refused(store, b"someone else's key")
    record = store.get_json("models/p/versions/1/version.json")
    store.put_bytes("models/p/versions/1/model.skops", b"evil")
    record["manifest"]["files"]["model.skops"] = hashlib.sha256(b"evil").hexdigest()
    store.put_json("models/p/versions/1/version.json", record)
    assert "signature does not match" in _refused(store)


def test_an_unsigned_version_is_refused(store: Store) -> None:
    register_version(store, "p", run_id="RUN1", model=b"good", meta={}, signing_key=KEY)
    record = store.get_json("models/p/versions/1/version.json")
    del record["manifest_signature"]
    store.put_json("models/p/versions/1/version.json", record)
    assert "is not signed" in _refused(store)


def test_concurrent_alias_moves_keep_every_move_in_history(store: Store) -> None:
    move_alias(store, "p", 1, run_id="R0")
    threads = [
        threading.Thread(target=move_alias, args=(store, "p", v), kwargs={"run_id": f"R{v}"})
        for v in (2, 3, 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = alias_history(store, "p")
    assert sorted(move["version"] for move in history) == [1, 2, 3, 4]
    final = get_alias(store, "p")
    assert final is not None and final["version"] in (2, 3, 4)
    # Each move names the version it replaced: the chain has no gaps, nothing was overwritten.
    assert sorted(m["previous"] for m in history if m["previous"]) == sorted(
        m["version"] for m in history if m["version"] != final["version"]
    )
