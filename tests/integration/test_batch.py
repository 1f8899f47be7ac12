"""Batch prediction against SeaweedFS: a dropped file scored in chunks by the production model."""

from __future__ import annotations

import io

import pandas as pd
from sklearn.pipeline import Pipeline

from services.batch.tasks import run_job
from shared.config import Settings
from shared.layout import job_key
from shared.messages import ScoreFile
from shared.storage import Store
from tests.integration.serve_support import deploy, fit_iris, iris_frame

JOB = "01JBATCH0000000000000000AA"


def _drop(store: Store, name: str, text: str) -> ScoreFile:
    store.put_bytes(f"batch/iris/{name}", text.encode())
    return ScoreFile(job_id=JOB, pipeline="iris", key=f"batch/iris/{name}")


def test_a_dropped_file_is_scored_in_chunks(settings: Settings, store: Store) -> None:
    model: Pipeline = fit_iris()
    X, _ = iris_frame()
    deploy(store, "iris", model, X, task="classification", target="species", run_id="r1")
    rows = X.sample(7, random_state=0)
    small = settings.model_copy(update={"batch_chunk_rows": 3})
    status = run_job(store, small, _drop(store, "rows.csv", rows.to_csv(index=False)))
    assert status["state"] == "succeeded", status
    assert (status["rows"], status["chunks"], status["model_version"]) == (7, 3, 1)
    assert status["output"] == job_key("iris", JOB, "rows.predictions.csv")
    out = pd.read_csv(io.BytesIO(store.get_bytes(status["output"])))
    assert out["prediction"].tolist() == model.predict(rows).tolist()
    proba = model.predict_proba(rows)
    assert abs(out["proba_setosa"].to_numpy() - proba[:, 0]).max() < 1e-9
    assert store.get_json(job_key("iris", JOB))["state"] == "succeeded"


def test_a_bad_file_fails_the_job_with_the_reason(settings: Settings, store: Store) -> None:
    nothing = run_job(store, settings, _drop(store, "a.csv", "sepal_length\n1\n"))
    assert nothing["state"] == "failed" and nothing["field"] == "pipeline"
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    job = ScoreFile(job_id=JOB.replace("AA", "BB"), pipeline="iris", key="batch/iris/b.csv")
    store.put_bytes(job.key, b"sepal_length,sepal_width,petal_length\n1,2,3\n")
    missing = run_job(store, settings, job)
    assert missing["state"] == "failed" and missing["field"] == "petal_width"
    job = ScoreFile(job_id=JOB.replace("AA", "CC"), pipeline="iris", key="batch/iris/c.csv")
    text = "sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n1,wide,3,4\n"
    store.put_bytes(job.key, text.encode())
    wrong = run_job(store, settings, job)
    assert wrong["state"] == "failed" and wrong["field"] == "sepal_width"
    assert "rows 1-2" in wrong["error"] and "expects a number" in wrong["error"]


def test_a_job_that_crashes_fails_with_an_internal_error(settings: Settings, store: Store) -> None:
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    keyless = settings.model_copy(update={"signing_key": None})  # a worker set up wrong
    status = run_job(store, keyless, _drop(store, "rows.csv", X.head(3).to_csv(index=False)))
    assert status["state"] == "failed"
    assert status["error"].startswith("internal error: CauceError: no model-signing key")
    stored = store.get_json(job_key("iris", JOB))
    assert (stored["state"], stored["error"]) == ("failed", status["error"])
    assert stored["finished"] >= stored["started"]


def test_a_job_scores_the_upload_it_was_queued_for_or_fails_saying_it_was_replaced(
    settings: Settings, store: Store
) -> None:
    """Two files put at one key: the first's job never scores the second's rows."""
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    first = _drop(store, "rows.csv", X.head(3).to_csv(index=False))
    etag = store.head(first.key).etag
    store.put_json(job_key("iris", JOB), {"state": "queued", "etag": etag})
    store.put_bytes(first.key, X.head(5).to_csv(index=False).encode())  # replaced since
    status = run_job(store, settings, first)
    assert status["state"] == "failed" and status["field"] == "file", status
    assert "was replaced after this job was queued" in status["error"]

    second = ScoreFile(job_id=JOB.replace("AA", "DD"), pipeline="iris", key=first.key)
    now_etag = store.head(first.key).etag
    store.put_json(job_key("iris", second.job_id), {"state": "queued", "etag": now_etag})
    assert run_job(store, settings, second)["rows"] == 5
