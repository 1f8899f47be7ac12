"""Runs written before the stage results were typed (tests/fixtures/statuses, from real runs of the
earlier code), put in a real bucket: the runs view and pages show them as they did, later stages
read their results typed, and their step-cache entries still restore."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared.caching import cache_key
from shared.client.runlist import Reader, RunCache, runs_page
from shared.config import Settings
from shared.context import StageContext
from shared.layout import cache_entry_key
from shared.messages import RunStage
from shared.results import Result
from shared.runs import create_run, describe_run, read_run, read_status
from shared.stage import StageRunner
from shared.storage import Store
from tests.integration.stage_support import FakeApp, FakeTask

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "statuses"
RUN_IDS = sorted(p.name for p in (FIXTURES / "runs").iterdir())
FIRST = RUN_IDS[0]


def _upload(store: Store) -> None:
    for path in (FIXTURES / "runs").glob("*/**/*.json"):
        if path.name in ("run.json", "status.json"):
            store.put_bytes(path.relative_to(FIXTURES).as_posix(), path.read_bytes())


# Fields the run view gained after these runs were recorded, and what an old run shows in them.
ADDED = (
    "target_guessed",
    "task_guessed",
    "champion_version",
    "metric",
    "search",
    "selection",
    "warnings",
)


def _view(run_id: str) -> dict:
    return dict(json.loads((FIXTURES / "runs" / run_id / "view.json").read_text()))


def _as_recorded(view: dict) -> dict:
    """The view without the fields added since the fixtures were recorded."""
    assert view.get("target_guessed") is None and view.get("task_guessed") is None
    return {key: value for key, value in view.items() if key not in ADDED}


def test_old_runs_show_as_they_did_in_the_view_and_the_pages(store: Store) -> None:
    _upload(store)
    for run_id in RUN_IDS:
        assert _as_recorded(describe_run(store, run_id)) == _view(run_id)
    with ThreadPoolExecutor(4) as pool:
        page = runs_page(Reader(store, pool, RunCache()), limit=10)
        failed = runs_page(Reader(store, pool, RunCache()), state="failed")
    assert [_as_recorded(view) for view in page.runs] == [
        _view(run_id) for run_id in reversed(RUN_IDS)
    ]
    assert [view["run_id"] for view in failed.runs] == [RUN_IDS[-1]]


def test_a_later_stage_reads_old_results_typed(store: Store, settings: Settings) -> None:
    _upload(store)
    record = read_run(store, FIRST)
    ctx = StageContext("deploy", FIRST, "cancer", record, store, settings, FakeApp())
    assert ctx.upstream("train").best.params == {"C": 0.1}
    assert ctx.upstream("evaluate").gate.passed is True
    assert ctx.upstream("ingest").target == "diagnosis"
    assert ctx.upstream("preprocess").rows == {"train": 341, "validation": 114, "test": 114}


def test_an_old_cache_entry_restores_into_a_new_run(store: Store, settings: Settings) -> None:
    _upload(store)
    entry = json.loads(min((FIXTURES / "cache" / "preprocess").glob("*.json")).read_text())
    for name in entry["result"]["outputs"]:
        store.put_bytes(f"runs/{entry['run_id']}/preprocess/{name}", name.encode())
    inputs = {"ingest": "the same table"}
    store.put_json(cache_entry_key("preprocess", cache_key("preprocess", inputs)), entry)
    run_id = "01JNEWRUN00000000000000000"
    create_run(store, run_id=run_id, pipeline="cancer", source={"key": "k"}, spec_text=None)

    def work(ctx: StageContext) -> Result:
        raise AssertionError("the cached result was not reused")

    runner = StageRunner(
        stage="preprocess",
        store=store,
        settings=settings,
        work=work,
        cache_inputs=lambda ctx: inputs,
    )
    task = FakeTask()
    runner(task, RunStage(run_id=run_id, pipeline="cancer"))
    status = read_status(store, run_id, "preprocess")
    assert status is not None and status["state"] == "succeeded", status
    assert status["cached_from"] == entry["run_id"]
    assert {key: status[key] for key in entry["result"]} == entry["result"]
    assert store.get_bytes(f"runs/{run_id}/preprocess/transformer.skops") == b"transformer.skops"
    assert task.app.sent == [("train.run", {"run_id": run_id, "pipeline": "cancer"})]
