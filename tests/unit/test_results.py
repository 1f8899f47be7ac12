"""status.json files written before the results were typed (tests/fixtures/statuses, from real
runs of the earlier code) read into the models, and write back as the same JSON."""

from __future__ import annotations

import json
from pathlib import Path

from shared.results import RESULTS, Deployed, Evaluated, Ingested, Planned, StageStatus, Trained

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "statuses" / "runs"
FIRST, DUPLICATE, FORCED, REGRESSION, BAD = sorted(p.name for p in RUNS.iterdir())


def _raw(run_id: str, stage: str, name: str = "status.json") -> dict:
    return dict(json.loads((RUNS / run_id / stage / name).read_text()))


def test_every_old_status_reads_and_writes_back_the_same_json() -> None:
    paths = sorted(RUNS.glob("*/*/status*.json"))
    assert len(paths) == 18
    for path in paths:
        raw = json.loads(path.read_text())
        status = StageStatus.model_validate(raw)
        assert status.fields() == raw, path
        if status.state == "succeeded":
            result = RESULTS[raw["stage"]].model_validate(raw)
            assert result.fields() == raw, path


def test_old_results_read_as_typed_fields() -> None:
    trained = Trained.model_validate(_raw(FIRST, "train"))
    assert (trained.best.estimator, trained.best.params) == ("logistic_regression", {"C": 0.1})
    assert trained.classes == ["benign", "malignant"] and trained.trials == 2
    evaluated = Evaluated.model_validate(_raw(FIRST, "evaluate"))
    assert evaluated.gate.passed is True and evaluated.gate.reason == "no production model yet"
    assert Deployed.model_validate(_raw(FIRST, "deploy")).version == 1
    ingested = Ingested.model_validate(_raw(FIRST, "ingest"))
    assert (ingested.target, ingested.task, ingested.rows) == ("diagnosis", "classification", 569)
    assert ingested.cache_key and len(ingested.sha256) == 64
    duplicate = StageStatus.model_validate(_raw(DUPLICATE, "ingest"))
    assert duplicate.ends_run is True
    assert Ingested.model_validate(_raw(DUPLICATE, "ingest")).duplicate_of == FIRST
    assert Trained.model_validate(_raw(FORCED, "train")).cached_from == FIRST
    assert Trained.model_validate(_raw(REGRESSION, "train")).classes is None
    assert Evaluated.model_validate(_raw(REGRESSION, "evaluate")).gate.passed is True
    failed = StageStatus.model_validate(_raw(BAD, "ingest"))
    assert (failed.state, failed.field, failed.attempts) == ("failed", "target", 1)
    planned = _raw(REGRESSION, "train", "status.running.json")
    assert StageStatus.model_validate(planned).state == "running"
    assert Planned.model_validate(planned).trials_planned == 2
