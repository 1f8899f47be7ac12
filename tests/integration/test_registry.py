"""The registry against a real S3 server: immutable versions, compare-and-swap aliases, history."""

from __future__ import annotations

import threading

from shared.registry import (
    alias_history,
    get_alias,
    list_versions,
    load_version,
    move_alias,
    register_version,
)
from shared.storage import Store


def test_versions_are_numbered_and_idempotent_per_run(store: Store) -> None:
    first = register_version(store, "p", run_id="RUN1", model=b"one", meta={"task": "regression"})
    again = register_version(store, "p", run_id="RUN1", model=b"one", meta={"task": "regression"})
    second = register_version(store, "p", run_id="RUN2", model=b"two", meta={})
    assert (first["version"], again["version"], second["version"]) == (1, 1, 2)
    assert [v["version"] for v in list_versions(store, "p")] == [1, 2]
    record, model = load_version(store, "p", 2)
    assert model == b"two" and record["run_id"] == "RUN2"


def test_concurrent_registrations_get_distinct_versions(store: Store) -> None:
    results: list[int] = []

    def register(index: int) -> None:
        record = register_version(store, "p", run_id=f"RUN{index}", model=b"m", meta={})
        results.append(record["version"])

    threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2, 3, 4, 5, 6]


def test_tampered_artifact_is_refused(store: Store) -> None:
    register_version(store, "p", run_id="RUN1", model=b"good", meta={})
    store.put_bytes("models/p/versions/1/model.skops", b"evil")
    try:
        load_version(store, "p", 1)
    except Exception as exc:
        assert "sha256" in str(exc)
    else:
        raise AssertionError("a tampered model was loaded")


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
