"""CAUCE_WORKER_MAX_MEMORY_MB reaches the Celery pool of every stage worker."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.results import Result
from shared.stage import create_stage_worker


def _work(ctx: object) -> Result:
    return Result()


@pytest.mark.parametrize(("value", "kib"), [(None, 512 * 1024), ("300", 300 * 1024), ("0", None)])
def test_a_pool_process_is_replaced_above_the_configured_memory(
    monkeypatch: pytest.MonkeyPatch, value: str | None, kib: int | None
) -> None:
    if value is not None:
        monkeypatch.setenv("CAUCE_WORKER_MAX_MEMORY_MB", value)
    app, _ = create_stage_worker("ingest", _work, settings=Settings())
    assert app.conf.worker_max_memory_per_child == kib
