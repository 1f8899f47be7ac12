"""Two deploys of one pipeline at the same moment: both versions kept, both moves recorded."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.deploy.tasks import deploy
from shared.artifacts import dump_model
from shared.config import Settings
from shared.messages import RunStage
from shared.registry import alias_history, get_alias, list_versions
from shared.runs import create_run, describe_run, write_status
from shared.signature import input_signature
from shared.stage import StageRunner
from shared.storage import Store
from tests.integration.stage_support import FakeTask


def _evaluated_run(store: Store, run_id: str) -> RunStage:
    """A run whose stages up to evaluate succeeded and whose gate passed."""
    create_run(
        store,
        run_id=run_id,
        pipeline="race",
        source={"key": f"incoming/race/{run_id}"},
        spec_text=None,
    )
    write_status(
        store,
        run_id,
        "ingest",
        state="succeeded",
        task="regression",
        target="y",
        sha256=run_id.lower(),
    )
    write_status(
        store,
        run_id,
        "train",
        state="succeeded",
        metric="rmse",
        classes=None,
        best={"estimator": "ridge", "params": {}, "score": 1.0},
    )
    write_status(
        store,
        run_id,
        "evaluate",
        state="succeeded",
        metrics={"rmse": 1.0},
        gate={"passed": True, "reason": "no production model yet"},
    )
    frame = pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40.0) * 2})
    model = make_pipeline(StandardScaler(), Ridge()).fit(frame[["x"]], frame["y"])
    spec = {
        "target": "y",
        "task": "regression",
        "metric": "rmse",
        "models": [{"estimator": "ridge"}],
    }
    store.put_json(f"runs/{run_id}/ingest/spec.json", spec)
    write_status(
        store,
        run_id,
        "preprocess",
        state="succeeded",
        rows={"train": 20, "validation": 10, "test": 10},
        features=1,
    )
    store.put_json(f"runs/{run_id}/preprocess/signature.json", input_signature(frame[["x"]]))
    store.put_frame(f"runs/{run_id}/preprocess/train.parquet", frame.iloc[:20])
    store.put_frame(f"runs/{run_id}/preprocess/validation.parquet", frame.iloc[20:30])
    store.put_frame(f"runs/{run_id}/preprocess/test.parquet", frame.iloc[30:])
    store.put_bytes(f"runs/{run_id}/train/model.skops", dump_model(model))
    return RunStage(run_id=run_id, pipeline="race")


def test_concurrent_deploys_keep_both_versions_and_record_both_moves(
    store: Store, settings: Settings
) -> None:
    runner = StageRunner(stage="deploy", store=store, settings=settings, work=deploy)
    runs = [_evaluated_run(store, f"01JRACE{n}000000000000000000"[:26]) for n in "AB"]
    start = threading.Barrier(2)

    def go(message: RunStage) -> None:
        start.wait()
        runner(FakeTask(), message)

    threads = [threading.Thread(target=go, args=(message,)) for message in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    versions = list_versions(store, "race")
    assert [describe_run(store, m.run_id)["error"] for m in runs] == [None, None]
    assert sorted(v["version"] for v in versions) == [1, 2]
    assert sorted(v["run_id"] for v in versions) == sorted(m.run_id for m in runs)
    history = alias_history(store, "race")
    assert sorted(move["version"] for move in history) == [1, 2]
    final = get_alias(store, "race")
    assert final is not None and final["version"] in (1, 2)
    first = next(move for move in history if move["version"] != final["version"])
    assert final["previous"] == first["version"]  # the later move saw the earlier one
