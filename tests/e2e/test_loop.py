"""The whole loop as a user drives it: drop or submit, follow the run, query the served model."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from services.train.ensemble import load_predictions
from tests.datasets import cancer_frame, diabetes_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run, wait_served

WEAK_CLASSIFIER = "models:\n  - estimator: logistic_regression\n    search: {C: [0.00001]}\n"


def infer_many(url: str, inputs: list[dict[str, Any]], count: int) -> Counter[tuple[int, str]]:
    """`count` OIP v2 inferences, four at a time, each on a connection of its own so that every
    serving worker takes some; tallied by status and the version that answered (or the error)."""

    def infer(_: int) -> tuple[int, str]:
        answer = requests.post(
            url, json={"inputs": inputs}, headers={"Connection": "close"}, timeout=10
        )
        body = answer.json()
        return answer.status_code, str(body.get("model_version", body.get("error")))

    with ThreadPoolExecutor(4) as pool:
        return Counter(pool.map(infer, range(count)))


def test_submit_classification_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    data = tmp_path / "cancer.csv"
    cancer_frame().to_csv(data, index=False)
    stack.store.put_bytes("pipelines/cancer.yaml", b"tuning: {ensemble: auto}\n")
    result = stack.cli(
        "submit", str(data), "--pipeline", "cancer", "--target", "diagnosis", "--wait", "--json"
    )
    run = json.loads(result.stdout)
    assert run["state"] == "succeeded" and run["error"] is None
    assert [s["stage"] for s in run["stages"]] == [
        "ingest",
        "preprocess",
        "train",
        "evaluate",
        "deploy",
    ]
    assert all(s["state"] == "succeeded" and s["seconds"] >= 0 for s in run["stages"])
    assert run["metrics"]["accuracy"] > 0.85 and run["metrics"]["roc_auc"] > 0.9
    assert run["model_version"] == 1 and run["promoted"] is True
    # progress while it ran (which stages a 0.3 s poll catches running depends on the machine)
    running = [line for line in result.stderr.splitlines() if "[running]" in line]
    assert running and all("ingest:" in line for line in running), result.stderr

    wait_served(stack.settings.serve_url, "cancer", 1)
    row = cancer_frame().drop(columns=["diagnosis"]).iloc[:2]
    answer = requests.post(
        f"{stack.settings.serve_url}/invocations/cancer",
        json={"dataframe_split": json.loads(row.to_json(orient="split", index=False))},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": "cancer", "version": 1}
    assert set(body["predictions"]) <= {"benign", "malignant"}
    assert abs(sum(body["probabilities"][0].values()) - 1) < 1e-6

    models = stack.cli_json("models", "cancer")
    assert [(m["pipeline"], m["version"], m["aliases"]) for m in models] == [
        ("cancer", 1, ["production"])
    ]
    # Measured on the test split, then fitted again on the training and validation rows.
    version = stack.store.get_json("models/cancer/versions/1/version.json")
    splits = stack.store.get_json(f"runs/{run['run_id']}/preprocess/status.json")["rows"]
    assert version["fitted_on"]["splits"] == ["train", "validation"]
    assert version["fitted_on"]["rows"] == splits["train"] + splits["validation"]
    assert version["metrics"]["accuracy"] == run["metrics"]["accuracy"]

    # 569 rows, the default search and `ensemble: auto`: 16 trials cross-validated, each keeping
    # its out-of-fold probabilities, and the served model a blend of the best of them.
    run_id = run["run_id"]
    plan = stack.store.get_json(f"runs/{run_id}/train/plan.json")
    assert plan["ensemble"] is True and plan["selection"] == {"method": "cv", "folds": 5}
    trials = stack.store.get_json(f"runs/{run_id}/train/trials.json")
    for trial in trials:
        if trial["state"] == "succeeded":
            key = f"runs/{run_id}/train/trials/{trial['index']:05d}.predictions"
            oof = load_predictions(stack.store.get_bytes(key))
            assert oof.shape == (splits["train"] + splits["validation"], 2)
            assert np.allclose(oof.sum(axis=1), 1)
    trained = stack.store.get_json(f"runs/{run_id}/train/status.json")
    best = trained["best"]
    assert best["estimator"] == "ensemble"
    assert trained["fit_seconds"] > 0  # the members' fit after the search, recorded
    members = best["params"]["members"]
    assert 2 <= len(members) <= 5
    assert sum(m["weight"] for m in members) == pytest.approx(1, abs=1e-3)
    scored = {t["index"]: t["score"] for t in trials if t["state"] == "succeeded"}
    assert all(m["trial"] in scored for m in members)
    assert best["score"] >= max(scored.values())  # out of fold, never below its best trial
    assert version["estimator"] == "ensemble" and version["params"]["members"] == members
    assert version["runtime"] == "onnx", version.get("runtime_reason")  # checked against sklearn
    shown = stack.cli("run", run_id).stdout
    blend = f"a blend of {len(members)} trials (5-fold cross-validated {trained['metric']} "
    assert f"  served: {blend}{best['score']:.4f}): #{members[0]['trial']} " in shown
    page = requests.get(f"{stack.settings.console_url}/runs/{run_id}", timeout=10).text
    assert f"Served: {blend}" in page


def test_regression_dropped_through_s3_and_answered_over_v2(stack: Stack) -> None:
    frame = diabetes_frame()
    # `refit: train` serves the model evaluate measured, as it is.
    stack.store.put_bytes("pipelines/diabetes.yaml", b"refit: train\n")
    stack.store.put_bytes("incoming/diabetes/2026-11.csv", frame.to_csv(index=False).encode())
    run = wait_run(stack.store, run_for(stack.store, "incoming/diabetes/2026-11.csv"))
    assert run["state"] == "succeeded", run["error"]
    assert run["task"] == "regression" and run["target"] == "progression"
    assert set(run["metrics"]) >= {"rmse", "mae", "r2"} and run["metrics"]["r2"] > 0.2

    wait_served(stack.settings.serve_url, "diabetes", run["model_version"])
    features = frame.drop(columns=["progression"]).iloc[:3]
    inputs = [
        {"name": col, "shape": [3], "datatype": "FP64", "data": features[col].tolist()}
        for col in features.columns
    ]
    url = f"{stack.settings.serve_url}/v2/models/diabetes/infer"
    # Right after the first deploy is reported served, every worker answers with it.
    version = str(run["model_version"])
    assert infer_many(url, inputs, 100) == Counter({(200, version): 100})
    answer = requests.post(url, json={"inputs": inputs}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "diabetes" and body["model_version"] == str(run["model_version"])
    (output,) = [o for o in body["outputs"] if o["name"] == "predict"]
    assert output["shape"] == [3] and all(25 <= value <= 346 for value in output["data"])

    runs = stack.cli_json("runs", "--pipeline", "diabetes")
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    version = stack.store.get_json(f"models/diabetes/versions/{version}/version.json")
    assert version["fitted_on"]["splits"] == ["train"]
    trained = stack.store.get_bytes(f"runs/{run['run_id']}/train/model.skops")
    assert (
        stack.store.get_bytes(f"models/diabetes/versions/{version['version']}/model.skops")
        == trained
    )


def test_only_a_better_model_moves_production(stack: Stack) -> None:
    """Weak model first, then a full search beats it, then a weak one does not."""
    versions = []
    for index, spec in enumerate([WEAK_CLASSIFIER, "", WEAK_CLASSIFIER]):
        # Rows in another order each time: new data, so none of these drops is a duplicate.
        body = cancer_frame().sample(frac=1, random_state=index).to_csv(index=False).encode()
        stack.store.put_bytes("pipelines/gated.yaml", f"target: diagnosis\n{spec}".encode())
        key = f"incoming/gated/part-{index}.csv"
        stack.store.put_bytes(key, body)
        run = wait_run(stack.store, run_for(stack.store, key))
        assert run["state"] == "succeeded", run["error"]
        versions.append(run)
    first, better, worse = versions
    assert first["promoted"] and first["gate"]["reason"].startswith("no production model")
    assert (
        better["promoted"]
        and better["champion_metrics"]["f1_macro"] < better["metrics"]["f1_macro"]
    )
    assert not worse["promoted"] and worse["model_version"] == 3
    assert worse["champion_metrics"]["f1_macro"] > worse["metrics"]["f1_macro"]

    models = stack.cli_json("models", "gated")
    assert [(m["version"], m["aliases"]) for m in models] == [(1, []), (2, ["production"]), (3, [])]
    meta = wait_served(stack.settings.serve_url, "gated", 2)
    assert [i["name"] for i in meta["inputs"]][:2] == ["mean_radius", "mean_texture"]


def test_status_lists_every_process_healthy(stack: Stack) -> None:
    status = stack.cli_json("status")
    names = [p["name"] for p in status["processes"]]
    assert names[:3] == ["broker", "s3", "watcher"] and "serve" in names
    assert names.count("train-1") == 1 and names.count("train-2") == 1
    assert all(p["healthy"] and p["pid"] > 0 for p in status["processes"])


def test_a_spec_naming_lightgbm_trains_it_and_serves_it_through_onnx(stack: Stack) -> None:
    frame = diabetes_frame()
    spec = "models: [{estimator: lightgbm}]\ntuning: {trials: 4}\n"
    stack.store.put_bytes("pipelines/boosted.yaml", spec.encode())
    stack.store.put_bytes("incoming/boosted/data.csv", frame.to_csv(index=False).encode())
    run = wait_run(stack.store, run_for(stack.store, "incoming/boosted/data.csv"))
    assert run["state"] == "succeeded", run["error"]
    version = stack.store.get_json(f"models/boosted/versions/{run['model_version']}/version.json")
    assert version["estimator"] == "lightgbm"
    assert (version["runtime"], version["onnx"]["passed"]) == ("onnx", True), version["onnx"]

    wait_served(stack.settings.serve_url, "boosted", run["model_version"])
    rows = frame.drop(columns=["progression"]).head(3).to_dict(orient="records")
    answer = requests.post(
        f"{stack.settings.serve_url}/invocations/boosted", json={"instances": rows}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert all(25 <= value <= 346 for value in answer.json()["predictions"])
