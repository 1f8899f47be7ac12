"""The fast path (ONNX exported at deploy), bearer-token auth, metrics and hot swap under load,
against SeaweedFS and the real app over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from pydantic import SecretStr
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from services.deploy.export import export_checked
from services.ingest.reading import read_table
from services.preprocess.features import build_transformer
from services.serve import create_app
from shared.artifacts import dump_model
from shared.config import Settings
from shared.layout import version_key
from shared.registry import move_alias, register_version
from shared.signature import input_signature
from shared.storage import Store
from tests.conftest import SIGNING_KEY
from tests.integration.serve_support import deploy, fit_iris, iris_frame, running

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def mixed_frame(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Numbers and text with gaps, and a yes/no target."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"x{i}": rng.normal(size=rows).round(3) for i in range(4)})
    X["plan"] = pd.Series(rng.choice(["basic", "plus", "pro"], size=rows), dtype="str")
    X.loc[rng.random(rows) < 0.05, "x1"] = np.nan
    X.loc[rng.random(rows) < 0.05, "plan"] = np.nan
    y = pd.Series(np.where(X["x0"] + (X["plan"] == "basic") > 0.2, "yes", "no"), name="churned")
    return X, y


@pytest.fixture(scope="module")
def boosted() -> tuple[Pipeline, pd.DataFrame]:
    X, y = mixed_frame(800, seed=1)
    features = build_transformer(X).fit(X)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return Pipeline([("features", features), ("model", model.fit(features.transform(X), y))]), X


def test_deploy_keeps_an_onnx_export_only_when_it_matches(boosted: Any) -> None:
    model, X = boosted
    test, _ = mixed_frame(300, seed=2)
    onnx, check = export_checked(model, test, input_signature(X), classify=True)
    assert onnx is not None and check["passed"] and check["rows"] == 300
    assert check["label_agreement"] == 1.0 and check["max_abs_diff"] < 1e-5
    X_iris, y_iris = iris_frame()
    one_step = Pipeline([("model", LogisticRegression(max_iter=500))]).fit(X_iris, y_iris)
    none, refused = export_checked(one_step, X_iris, input_signature(X_iris), classify=True)
    assert none is None and not refused["passed"] and "two-step" in refused["reason"]


def test_the_onnx_model_answers_as_scikit_learn_does(
    settings: Settings, store: Store, boosted: Any
) -> None:
    model, X = boosted
    test, _ = mixed_frame(200, seed=3)
    onnx, check = export_checked(model, test, input_signature(X), classify=True)
    assert onnx is not None
    meta = {
        "task": "classification",
        "target": "churned",
        "classes": ["no", "yes"],
        "signature": {"inputs": input_signature(X)},
        "onnx": {**check, "file": "model.onnx"},
    }
    record = register_version(
        store,
        "churn",
        run_id="r1",
        model=dump_model(model),
        meta=meta,
        files={"model.onnx": onnx},
        signing_key=SIGNING_KEY.encode(),
    )
    move_alias(store, "churn", record["version"])
    app = create_app(settings, store, start_poller=False)
    app.extensions["cauce.models"].refresh()
    rows = [[0.5, None, -1.0, 2.0, "basic"], [-2.0, 0.1, 0.0, 0.0, None], [1, 2, 3, 4, "new"]]
    columns = list(X.columns)
    with running(app) as url:
        listing = requests.get(url + "/v2/models", timeout=10).json()["models"]
        assert listing[0]["runtime"] == "onnx"
        body = {"dataframe_split": {"columns": columns, "data": rows}}
        answer = requests.post(url + "/invocations/churn", json=body, timeout=10).json()
    frame = pd.DataFrame(rows, columns=columns).astype({"x1": float, "plan": "str"})
    expected = model.predict_proba(frame)
    got = np.array([[p["no"], p["yes"]] for p in answer["probabilities"]])
    assert np.allclose(got, expected, atol=1e-6)
    assert answer["predictions"] == model.predict(frame).tolist()


SERVING_PROCESS = """
import json, sys
import services.serve, services.serve.invoke  # what a granian worker imports
from shared.columns import CompiledSignature
from shared.runtime import OnnxScorer
spec = json.loads(sys.argv[2])
scorer = OnnxScorer(open(sys.argv[1], "rb").read(), classify=True)
rows = json.loads(sys.argv[3])
columns = {spec[i]["name"]: [row[i] for row in rows] for i in range(len(spec))}
scored = scorer.score(CompiledSignature.compile(spec).check(columns))
heavy = ("pandas", "sklearn", "scipy", "skops", "pyarrow")
print(json.dumps({
    "predictions": scored.predictions.tolist(),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
}))
"""


def test_a_process_serving_onnx_never_imports_pandas_or_scikit_learn(
    boosted: Any, tmp_path: Path
) -> None:
    # They hold most of a worker's memory; only the skops fallback (and a bad value's message)
    # needs them, and they are imported then.
    model, X = boosted
    onnx, _ = export_checked(model, mixed_frame(200, seed=4)[0], input_signature(X), classify=True)
    assert onnx is not None
    (tmp_path / "model.onnx").write_bytes(onnx)
    rows = [[0.5, None, -1.0, 2.0, "basic"], [-2.0, 0.1, 0.0, 0.0, None]]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVING_PROCESS,
            str(tmp_path / "model.onnx"),
            json.dumps(input_signature(X)),
            json.dumps(rows),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["heavy"] == []
    frame = pd.DataFrame(rows, columns=list(X.columns)).astype({"x1": float, "plan": "str"})
    assert seen["predictions"] == model.predict(frame).tolist()


@pytest.fixture
def iris_deployed(store: Store) -> None:
    deploy(
        store,
        "iris",
        fit_iris(),
        iris_frame()[0],
        task="classification",
        target="species",
        run_id="r1",
    )


def test_a_token_guards_everything_but_the_health_probes(
    settings: Settings, store: Store, iris_deployed: None
) -> None:
    guarded = settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    app = create_app(guarded, store, start_poller=False)
    app.extensions["cauce.models"].refresh()
    body = {"instances": ROWS}
    with running(app) as url:
        missing = requests.post(url + "/invocations/iris", json=body, timeout=10)
        assert missing.status_code == 401 and missing.json()["field"] == "Authorization"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = {"Authorization": "Bearer s3cret-tokem"}
        assert (
            requests.post(
                url + "/invocations/iris", json=body, headers=wrong, timeout=10
            ).status_code
            == 401
        )
        assert requests.get(url + "/metrics", timeout=10).status_code == 401
        right = {"Authorization": "Bearer s3cret-token"}
        ok = requests.post(url + "/invocations/iris", json=body, headers=right, timeout=10)
        assert ok.status_code == 200 and ok.json()["model"]["version"] == 1
        assert requests.get(url + "/v2/health/live", timeout=10).status_code == 200
        assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 200


def test_metrics_count_requests_errors_latency_and_the_model_served(
    settings: Settings, store: Store, iris_deployed: None
) -> None:
    app = create_app(settings, store, start_poller=False)
    app.extensions["cauce.models"].refresh()
    with running(app) as url:
        requests.post(url + "/invocations/iris", json={"instances": ROWS}, timeout=10)
        requests.post(url + "/invocations/iris", json={"instances": [[1.0]]}, timeout=10)
        text = requests.get(url + "/metrics", timeout=10).text
    assert 'cauce_serve_requests_total{pipeline="iris",status="200",version="1"} 1.0' in text
    assert 'cauce_serve_errors_total{pipeline="iris",status="400",version="1"} 1.0' in text
    assert 'cauce_serve_request_seconds_count{pipeline="iris",version="1"} 2.0' in text
    assert 'cauce_serve_model_info{pipeline="iris",runtime="skops",version="1"} 1.0' in text
    assert 'cauce_serve_model_load_seconds{pipeline="iris",version="1"}' in text
    assert 'cauce_serve_model_version{pipeline="iris"} 1.0' in text


def _hammer(url: str, stop: threading.Event, seen: list[tuple[int, int, Any]]) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            response = session.post(url + "/invocations/iris", json={"instances": ROWS}, timeout=10)
            body = response.json()
            version = body.get("model", {}).get("version")
            seen.append((response.status_code, version, body.get("probabilities")))


def test_hot_swap_under_load_never_fails_or_mixes_versions(
    settings: Settings, store: Store
) -> None:
    X, _ = iris_frame()
    models = {1: fit_iris("logistic"), 2: fit_iris("tree")}
    for version, model in models.items():
        deploy(
            store,
            "iris",
            model,
            X,
            task="classification",
            target="species",
            run_id=f"r{version}",
            promote=version == 1,
        )
    fast = settings.model_copy(update={"serve_poll_seconds": 0.1})
    app = create_app(fast, store, start_poller=True)
    seen: list[tuple[int, int, Any]] = []
    stop = threading.Event()
    try:
        with running(app) as url:
            while requests.get(url + "/v2/health/ready", timeout=10).status_code != 200:
                time.sleep(0.1)
            workers = [threading.Thread(target=_hammer, args=(url, stop, seen)) for _ in range(4)]
            for worker in workers:
                worker.start()
            for version in (2, 1) * 5:  # the production alias moves ten times under load
                move_alias(store, "iris", version)
                time.sleep(0.6)
            stop.set()
            for worker in workers:
                worker.join(timeout=20)
    finally:
        stop.set()
        app.extensions["cauce.models"].stop()
    frame = pd.DataFrame(ROWS, columns=X.columns)
    expected = {v: m.predict_proba(frame) for v, m in models.items()}
    assert len(seen) > 50 and {status for status, _, _ in seen} == {200}
    assert {version for _, version, _ in seen} == {1, 2}
    for _, version, probabilities in seen:
        got = np.array([list(p.values()) for p in probabilities])
        assert np.allclose(got, expected[version]), f"v{version} answered with another model"
    assert store.exists(version_key("iris", 2))


def test_a_boolean_feature_is_served_by_onnx_as_scikit_learn_serves_it(
    settings: Settings, store: Store
) -> None:
    rng = np.random.default_rng(5)
    text = pd.DataFrame(
        {
            "x": rng.normal(size=600).round(3),
            "member": rng.choice(["true", "false", ""], size=600, p=[0.45, 0.45, 0.1]),
        }
    ).to_csv(index=False)
    X = read_table(text.encode(), filename="members.csv", max_bytes=10**7)
    y = np.where(X["x"] + (X["member"] == True) > 0.5, "yes", "no")  # noqa: E712
    features = build_transformer(X).fit(X)
    fitted = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model = Pipeline([("features", features), ("model", fitted.fit(features.transform(X), y))])
    signature = input_signature(X)
    assert signature[1] == {"name": "member", "type": "boolean"}
    onnx, check = export_checked(model, X, signature, classify=True)
    assert onnx is not None, check
    assert check["passed"] and check["label_agreement"] == 1.0
    record = register_version(
        store,
        "members",
        run_id="r1",
        model=dump_model(model),
        meta={
            "task": "classification",
            "target": "joined",
            "classes": ["no", "yes"],
            "signature": {"inputs": signature},
            "onnx": {**check, "file": "model.onnx"},
        },
        files={"model.onnx": onnx},
        signing_key=SIGNING_KEY.encode(),
    )
    move_alias(store, "members", record["version"])
    app = create_app(settings, store, start_poller=False)
    app.extensions["cauce.models"].refresh()
    rows = [[0.9, True], [0.9, False], [0.2, None], [-1.0, True]]
    with running(app) as url:
        assert requests.get(url + "/v2/models", timeout=10).json()["models"][0]["runtime"] == "onnx"
        body = {"dataframe_split": {"columns": ["x", "member"], "data": rows}}
        answer = requests.post(url + "/invocations/members", json=body, timeout=10).json()
    frame = pd.DataFrame(rows, columns=["x", "member"]).astype({"member": object})
    frame.loc[frame["member"].isna(), "member"] = np.nan
    got = np.array([[p["no"], p["yes"]] for p in answer["probabilities"]])
    assert np.allclose(got, model.predict_proba(frame), atol=1e-6)
    assert answer["predictions"] == model.predict(frame).tolist()
