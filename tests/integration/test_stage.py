"""The stage adapter against a real S3 server: idempotent, status last, failures recorded."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.config import Settings
from shared.context import StageContext
from shared.errors import DataError, TransientError
from shared.ids import now
from shared.messages import RunStage
from shared.results import Preprocessed, Result
from shared.runs import create_run, describe_run, read_status, write_status
from shared.spec import parse_spec, resolve_spec
from shared.stage import StageRunner
from shared.storage import Store
from tests.integration.stage_support import FakeApp, FakeRequest, FakeTask, Retry

MESSAGE = RunStage(run_id="01JTESTRUN0000000000000000", pipeline="p")


@pytest.fixture
def run(store: Store) -> RunStage:
    create_run(
        store,
        run_id=MESSAGE.run_id,
        pipeline="p",
        source={"key": "incoming/p/a.csv"},
        spec_text=None,
    )
    return MESSAGE


def _runner(store: Store, settings: Settings, work: Any, **kwargs: Any) -> StageRunner:
    return StageRunner(stage="preprocess", store=store, settings=settings, work=work, **kwargs)


def test_success_records_outputs_and_sends_the_next_stage(
    store: Store, settings: Settings, run: RunStage
) -> None:
    task = FakeTask()
    _runner(store, settings, lambda ctx: Preprocessed(rows={"train": 3}, features=2))(task, run)
    status = read_status(store, run.run_id, "preprocess")
    assert status is not None
    assert (status["state"], status["rows"], status["attempts"]) == ("succeeded", {"train": 3}, 1)
    assert status["seconds"] >= 0
    assert task.app.sent == [("train.run", {"run_id": run.run_id, "pipeline": "p"})]


def test_a_redelivered_message_after_success_only_resends_the_next(
    store: Store, settings: Settings, run: RunStage
) -> None:
    calls: list[str] = []

    def work(ctx: StageContext) -> Result:
        calls.append(ctx.run_id)
        return Result()

    runner = _runner(store, settings, work)
    first, second = FakeTask(), FakeTask()
    runner(first, run)
    runner(second, run)
    assert calls == [run.run_id]
    assert second.app.sent == first.app.sent


def test_bad_data_fails_the_run_with_the_reason(
    store: Store, settings: Settings, run: RunStage
) -> None:
    failures: list[str] = []

    def work(ctx: StageContext) -> Result:
        raise DataError("column 'x' is text; make it numbers", field="x")

    task = FakeTask()
    runner = _runner(store, settings, work, on_failure=lambda ctx, exc: failures.append(str(exc)))
    runner(task, run)
    view = describe_run(store, run.run_id)
    assert view["state"] == "failed"
    assert view["error"] == "preprocess: column 'x' is text; make it numbers"
    assert failures == ["column 'x' is text; make it numbers"] and task.app.sent == []


def test_a_crash_fails_the_run_and_names_the_exception(
    store: Store, settings: Settings, run: RunStage
) -> None:
    def work(ctx: StageContext) -> Result:
        raise KeyError("boom")

    _runner(store, settings, work)(FakeTask(), run)
    assert (
        describe_run(store, run.run_id)["error"] == "preprocess: internal error: KeyError: 'boom'"
    )


def test_a_stage_whose_worker_keeps_dying_gives_up_with_that_reason(
    store: Store, settings: Settings, run: RunStage
) -> None:
    runner = _runner(store, settings, lambda ctx: Result())
    # Each delivery finds the last one still "running": its worker died mid-stage.
    for died in range(settings.max_redeliveries + 1):
        store.put_json(
            f"runs/{run.run_id}/preprocess/status.json",
            {
                "state": "running",
                "started": "2026-01-01T00:00:00+00:00",
                "attempts": died + 1,
                "retries": 0,
                "interrupted": died,
            },
        )
        if died < settings.max_redeliveries:
            continue
        runner(FakeTask(), run)
    error = describe_run(store, run.run_id)["error"]
    assert error.startswith(
        f"preprocess: gave up after the worker stopped {settings.max_redeliveries + 1} times"
    )


def test_a_celery_retry_is_not_counted_as_a_lost_worker(
    store: Store, settings: Settings, run: RunStage
) -> None:
    store.put_json(
        f"runs/{run.run_id}/preprocess/status.json",
        {
            "state": "running",
            "started": "2026-01-01T00:00:00+00:00",
            "attempts": 9,
            "retries": 8,
            "interrupted": settings.max_redeliveries,
        },
    )
    task = FakeTask(request=FakeRequest(retries=9))
    _runner(store, settings, lambda ctx: Preprocessed(rows={"train": 1}, features=2))(task, run)
    assert describe_run(store, run.run_id)["stages"][1]["state"] == "succeeded"


def test_an_unreachable_store_retries_instead_of_failing(
    store: Store, settings: Settings, run: RunStage
) -> None:
    def work(ctx: StageContext) -> Result:
        raise TransientError("object store unreachable")

    with pytest.raises(Retry, match="retry in 1s"):
        _runner(store, settings, work)(FakeTask(), run)
    assert describe_run(store, run.run_id)["state"] == "running"


def test_only_one_task_may_run_a_runs_selection(
    store: Store, settings: Settings, run: RunStage
) -> None:
    from services.train.tasks import claim_selection

    ctx = _runner(store, settings, lambda ctx: Result()).context(FakeApp(), run)
    ctx.stage = "train"
    store.put_json(ctx.key("heartbeat.json"), {"at": time.time(), "worker": "a"})
    assert claim_selection(ctx, "task-a")
    assert claim_selection(ctx, "task-a")  # the same message redelivered: carry on
    assert not claim_selection(ctx, "task-b")  # a duplicate while the claimer is alive
    store.delete(ctx.key("heartbeat.json"))  # the claimer went quiet (its beat is gone)
    assert claim_selection(ctx, "task-b")  # ... so another takes over
    store.put_json(ctx.key("heartbeat.json"), {"at": time.time(), "worker": "b"})
    assert not claim_selection(ctx, "task-a")  # the old claimer, back, now loses


def test_a_selection_that_crashes_fails_the_run_with_an_internal_error(
    store: Store, settings: Settings, run: RunStage
) -> None:
    from services.train.tasks import finish
    from shared.layout import trial_key

    runner = StageRunner(stage="train", store=store, settings=settings, work=lambda ctx: Result())
    ctx = runner.context(FakeApp(), run)
    spec = resolve_spec(parse_spec(None), target="y", task="classification")
    store.put_json(ctx.key("spec.json", "ingest"), spec.model_dump())
    store.put_json(ctx.key("plan.json"), {"trials": [{"estimator": "random_forest"}]})
    store.put_json(trial_key(run.run_id, 0), {"estimator": "random_forest"})  # no state, no error
    write_status(store, run.run_id, "train", state="running", started=now(), attempts=1)
    task = FakeTask()
    finish(runner, task, run)
    view = describe_run(store, run.run_id)
    assert view["state"] == "failed"
    assert view["error"] == "train: internal error: KeyError: 'error'"
    assert task.app.sent == []
