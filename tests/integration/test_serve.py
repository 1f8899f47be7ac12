"""The prediction service against SeaweedFS and real fitted models, over real HTTP."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from services.serve import create_app
from services.serve.models import ModelCache
from shared.config import Settings
from shared.layout import version_key
from shared.registry import move_alias
from shared.storage import Store
from tests.integration.serve_support import (
    deploy,
    diabetes_xy,
    fit_diabetes,
    fit_iris,
    iris_frame,
    running,
)

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@dataclass
class Service:
    """A running prediction service and the cache behind it."""

    url: str
    cache: ModelCache

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST JSON (or raw bytes with the given headers)."""
        if raw is not None:
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            return requests.post(self.url + path, data=raw, headers=hdrs, timeout=30)
        return requests.post(self.url + path, json=body, headers=headers, timeout=30)

    def get(self, path: str) -> requests.Response:
        """GET a path."""
        return requests.get(self.url + path, timeout=30)


@pytest.fixture(scope="module")
def iris_model() -> Pipeline:
    return fit_iris("logistic")


@pytest.fixture(scope="module")
def diabetes_model() -> Pipeline:
    return fit_diabetes()


@contextmanager
def _serve(settings: Settings, store: Store, *, poller: bool = False) -> Iterator[Service]:
    """Run the app over real HTTP; without the poller, refresh once by hand."""
    app = create_app(settings, store, start_poller=poller)
    cache: ModelCache = app.extensions["cauce.models"]
    if not poller:
        cache.refresh()
    try:
        with running(app) as url:
            yield Service(url, cache)
    finally:
        cache.stop()


@pytest.fixture
def service(settings: Settings, store: Store, iris_model: Pipeline) -> Iterator[Service]:
    """The service with one deployed pipeline, `iris`, at version 1."""
    deploy(
        store,
        "iris",
        iris_model,
        iris_frame()[0],
        task="classification",
        target="species",
        run_id="run-iris-1",
    )
    with _serve(settings, store) as running_service:
        yield running_service


def _expected(model: Pipeline) -> tuple[list[str], np.ndarray]:
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    return model.predict(frame).tolist(), model.predict_proba(frame)


RECORDS = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
MLFLOW_BODIES = {
    "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
    "dataframe_records": {"dataframe_records": RECORDS},
    "instances_records": {"instances": RECORDS},
    "instances_rows": {"instances": ROWS},
    "inputs_columns": {"inputs": {c: [row[i] for row in ROWS] for i, c in enumerate(COLUMNS)}},
    "inputs_rows": {"inputs": ROWS},
    "plain_records": RECORDS,
    "numbers_as_text": {"dataframe_records": [{k: str(v) for k, v in r.items()} for r in RECORDS]},
    # rows copied from the training file, target column and all: the target is not an input
    "with_the_target": {"dataframe_records": [{**r, "species": "setosa"} for r in RECORDS]},
}


@pytest.mark.parametrize("body", MLFLOW_BODIES.values(), ids=MLFLOW_BODIES.keys())
def test_mlflow_formats_answer_with_the_model_and_its_version(
    service: Service, iris_model: Pipeline, body: Any
) -> None:
    response = service.post("/invocations/iris", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    labels, proba = _expected(iris_model)
    assert answer["predictions"] == labels
    assert answer["model"] == {"name": "iris", "version": 1}
    assert response.headers["X-Model-Version"] == "1"
    assert [list(p) for p in answer["probabilities"]] == [["setosa", "versicolor", "virginica"]] * 3
    got = np.array(
        [[p[c] for c in ("setosa", "versicolor", "virginica")] for p in answer["probabilities"]]
    )
    assert np.allclose(got, proba)


def test_csv_body_and_default_pipeline(service: Service, iris_model: Pipeline) -> None:
    csv = ",".join(COLUMNS) + "\n" + "\n".join(",".join(map(str, row)) for row in ROWS)
    response = service.post("/invocations", raw=csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == _expected(iris_model)[0]
    named = service.post("/invocations", {"instances": ROWS}, headers={"X-Cauce-Pipeline": "iris"})
    assert named.json()["predictions"] == _expected(iris_model)[0]


def test_a_gzip_body_is_inflated_and_other_encodings_refused(
    service: Service, iris_model: Pipeline
) -> None:
    # Content-Encoding was ignored, so a gzip body got "not valid UTF-8".
    body = gzip.compress(json.dumps({"instances": ROWS}).encode())
    gzipped = service.post("/invocations/iris", raw=body, headers={"Content-Encoding": "gzip"})
    assert gzipped.status_code == 200, gzipped.text
    assert gzipped.json()["predictions"] == _expected(iris_model)[0]
    other = service.post("/invocations/iris", raw=body, headers={"Content-Encoding": "br"})
    assert other.status_code == 415 and other.json()["field"] == "Content-Encoding"


def test_oip_v2_column_tensors_and_matrix(service: Service, iris_model: Pipeline) -> None:
    labels, proba = _expected(iris_model)
    tensors = [
        {"name": c, "shape": [3], "datatype": "FP64", "data": [r[i] for r in ROWS]}
        for i, c in enumerate(COLUMNS)
    ]
    matrix = [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]
    for inputs in (tensors, matrix):
        response = service.post("/v2/models/iris/infer", {"id": "req-7", "inputs": inputs})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model_name"], body["model_version"], body["id"]) == ("iris", "1", "req-7")
        predict, predict_proba = body["outputs"]
        assert predict == {"name": "predict", "shape": [3], "datatype": "BYTES", "data": labels}
        assert predict_proba["shape"] == [3, 3] and predict_proba["datatype"] == "FP64"
        assert np.allclose(predict_proba["data"], proba.ravel())
        assert response.headers["X-Model-Version"] == "1"
    pinned = service.post("/v2/models/iris/versions/1/infer", {"inputs": matrix})
    assert pinned.status_code == 200
    other = service.post("/v2/models/iris/versions/2/infer", {"inputs": matrix})
    assert other.status_code == 404 and other.json()["field"] == "version"


def test_regression_and_routing_between_pipelines(
    service: Service, store: Store, diabetes_model: Pipeline
) -> None:
    X, _ = diabetes_xy()
    deploy(
        store,
        "diabetes",
        diabetes_model,
        X,
        task="regression",
        target="progression",
        run_id="run-diabetes-1",
    )
    service.cache.refresh()
    rows = X.head(2)
    response = service.post(
        "/invocations/diabetes", {"dataframe_split": json.loads(rows.to_json(orient="split"))}
    )
    assert response.status_code == 200, response.text
    assert np.allclose(response.json()["predictions"], diabetes_model.predict(rows))
    assert "probabilities" not in response.json()
    v2 = service.post(
        "/v2/models/diabetes/infer",
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 10],
                    "datatype": "FP64",
                    "data": rows.to_numpy().tolist(),
                }
            ]
        },
    )
    assert [o["name"] for o in v2.json()["outputs"]] == ["predict"]
    assert v2.json()["outputs"][0]["datatype"] == "FP64"
    ambiguous = service.post("/invocations", {"instances": ROWS})
    assert ambiguous.status_code == 400
    assert ambiguous.json()["field"] == "X-Cauce-Pipeline"
    listing = service.get("/v2/models").json()["models"]
    assert {(m["name"], m["version"]) for m in listing} == {("iris", 1), ("diabetes", 1)}


def test_model_metadata_and_health(service: Service) -> None:
    meta = service.get("/v2/models/iris")
    assert meta.status_code == 200 and meta.headers["X-Model-Version"] == "1"
    body = meta.json()
    assert (body["name"], body["versions"], body["platform"]) == ("iris", ["1"], "sklearn")
    assert [(i["name"], i["datatype"]) for i in body["inputs"]] == [(c, "FP64") for c in COLUMNS]
    assert body["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}
    assert body["metrics"] == {"accuracy": 0.95} and body["task"] == "classification"
    assert service.get("/models").json()["models"][0]["name"] == "iris"
    assert service.get("/v2/health/live").status_code == 200
    service.post("/invocations/iris", {"instances": ROWS})
    metrics = service.get("/metrics").text
    assert 'cauce_serve_requests_total{pipeline="iris",status="200",version="1"} 1.0' in metrics
    assert 'cauce_serve_model_version{pipeline="iris"} 1' in metrics
    ready = service.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json()["models"] == {"iris": 1}
    assert service.get("/v2/models/iris/ready").status_code == 200


def test_not_ready_until_the_registry_is_read(
    settings: Settings, store: Store, iris_model: Pipeline
) -> None:
    deploy(
        store,
        "iris",
        iris_model,
        iris_frame()[0],
        task="classification",
        target="species",
        run_id="run-1",
    )
    app = create_app(settings, store, start_poller=False)
    with running(app) as url:
        assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 503
        app.extensions["cauce.models"].refresh()
        assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 200


BAD = {
    "malformed_json": ('{"instances": [1,', 400, "body", "not valid JSON"),
    "no_known_key": ({"rows": ROWS}, 400, "body", "send exactly one of"),
    "two_keys": ({"instances": ROWS, "inputs": ROWS}, 400, "inputs", "exactly one"),
    "missing_column": (
        {"dataframe_records": [{k: v for k, v in RECORDS[0].items() if k != "petal_width"}]},
        400,
        "petal_width",
        "missing column 'petal_width'",
    ),
    "unknown_column": (
        {"dataframe_records": [{**RECORDS[0], "colour": "blue"}]},
        400,
        "colour",
        "unknown column 'colour'",
    ),
    "text_in_numeric": (
        {"dataframe_records": [{**RECORDS[0], "sepal_width": "wide"}]},
        400,
        "sepal_width",
        "expects a number",
    ),
    "short_row": (
        {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}},
        400,
        "dataframe_split.data[0]",
        "4 values",
    ),
    "record_not_object": ({"dataframe_records": [1, 2]}, 400, "dataframe_records[0]", "object"),
    "empty_instances": ({"instances": []}, 400, "instances", "list"),
}


@pytest.mark.parametrize("body,status,field,message", BAD.values(), ids=BAD.keys())
def test_bad_mlflow_requests_name_the_field(
    service: Service, body: Any, status: int, field: str, message: str
) -> None:
    response = (
        service.post("/invocations/iris", raw=body)
        if isinstance(body, str)
        else service.post("/invocations/iris", body)
    )
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert message in response.json()["error"]
    assert response.headers["X-Model-Version"] == "1"


BAD_V2 = {
    "wrong_width": (
        [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}],
        "inputs[0].shape",
        "[rows, 4]",
    ),
    "shape_vs_data": (
        [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS[0]}],
        "inputs[0].shape",
        "needs 8 values",
    ),
    "bad_datatype": (
        [{"name": "x", "shape": [1, 4], "datatype": "FLOAT", "data": ROWS[0]}],
        "inputs[0].datatype",
        "must be one of",
    ),
    "uneven_columns": (
        [
            {
                "name": c,
                "shape": [1 + (c == "petal_width")],
                "datatype": "FP64",
                "data": [1.0] * (1 + (c == "petal_width")),
            }
            for c in COLUMNS
        ],
        "inputs",
        "same number of rows",
    ),
    "unknown_tensor": (
        [
            {"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]}
            for c in [*COLUMNS, "colour"]
        ],
        "colour",
        "unknown column",
    ),
    "text_tensor": (
        [{"name": c, "shape": [1], "datatype": "BYTES", "data": ["x"]} for c in COLUMNS],
        "sepal_length",
        "expects a number",
    ),
}


@pytest.mark.parametrize("inputs,field,message", BAD_V2.values(), ids=BAD_V2.keys())
def test_bad_v2_requests_name_the_field(
    service: Service, inputs: Any, field: str, message: str
) -> None:
    response = service.post("/v2/models/iris/infer", {"inputs": inputs})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert message in response.json()["error"]


def test_unknown_pipeline_wrong_type_and_oversized_body(
    settings: Settings, store: Store, iris_model: Pipeline
) -> None:
    deploy(
        store,
        "iris",
        iris_model,
        iris_frame()[0],
        task="classification",
        target="species",
        run_id="run-1",
    )
    small = settings.model_copy(update={"max_request_bytes": 50_000})
    with _serve(small, store) as service:
        missing = service.post("/invocations/nope", {"instances": ROWS})
        assert missing.status_code == 404 and missing.json()["field"] == "pipeline"
        assert "'nope'" in missing.json()["error"]
        assert service.post("/v2/models/nope/infer", {"inputs": []}).status_code == 404
        assert service.get("/v2/models/nope").status_code == 404
        by_header = service.post(
            "/invocations", {"instances": ROWS}, headers={"X-Cauce-Pipeline": "nope"}
        )
        assert by_header.status_code == 404 and by_header.json()["field"] == "X-Cauce-Pipeline"
        xml = service.post(
            "/invocations/iris", raw="<rows/>", headers={"Content-Type": "application/xml"}
        )
        assert xml.status_code == 415 and xml.json()["field"] == "Content-Type"
        big = service.post("/invocations/iris", {"instances": ROWS * 2000})
        assert big.status_code == 413, big.text
        assert big.json()["field"] == "body" and "50000 bytes" in big.json()["error"]
        assert service.post("/invocations/iris", {"instances": ROWS}).status_code == 200


def test_hot_swap_to_a_new_version_without_restart(
    settings: Settings, store: Store, iris_model: Pipeline
) -> None:
    X, _ = iris_frame()
    deploy(store, "iris", iris_model, X, task="classification", target="species", run_id="r1")
    fast = settings.model_copy(update={"serve_poll_seconds": 0.2})
    with _serve(fast, store, poller=True) as service:
        assert _version_within(service, 1, seconds=15) == 1
        deploy(
            store, "iris", fit_iris("tree"), X, task="classification", target="species", run_id="r2"
        )
        assert _version_within(service, 2, seconds=10) == 2
        assert service.get("/v2/models/iris").json()["estimator"] == "DecisionTreeClassifier"


def test_a_broken_version_leaves_the_old_one_serving(
    service: Service, store: Store, iris_model: Pipeline
) -> None:
    record = deploy(
        store,
        "iris",
        iris_model,
        iris_frame()[0],
        task="classification",
        target="species",
        run_id="run-iris-2",
        promote=False,
    )
    store.put_bytes(version_key("iris", record["version"], "model.skops"), b"not a model")
    move_alias(store, "iris", record["version"])
    assert service.cache.refresh() == {"iris": 1}
    response = service.post("/invocations/iris", {"instances": ROWS})
    assert response.status_code == 200 and response.json()["model"]["version"] == 1
    status = service.get("/v2/health/ready").json()
    assert "does not match its signed manifest" in status["errors"]["iris"]


def _version_within(service: Service, version: int, *, seconds: float) -> int | None:
    """Poll until the service answers with `version`; return the last version seen."""
    deadline, seen = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        response = service.post("/invocations/iris", {"instances": ROWS})
        if response.status_code == 200:
            seen = response.json()["model"]["version"]
            assert response.headers["X-Model-Version"] == str(seen)
            if seen == version:
                return seen
        time.sleep(0.1)
    return seen


def test_a_model_that_refuses_gaps_still_loads(service: Service, store: Store) -> None:
    X, y = iris_frame()
    strict = Pipeline([("model", LogisticRegression(max_iter=500))]).fit(X, y)
    deploy(store, "strict", strict, X, task="classification", target="species", run_id="s1")
    assert service.cache.refresh() == {"iris": 1, "strict": 1}
    response = service.post("/invocations/strict", {"instances": ROWS})
    assert (
        response.json()["predictions"]
        == strict.predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()
    )
    gap = service.post("/invocations/strict", {"instances": [[None, 3.0, 1.0, 0.2]]})
    assert gap.status_code == 422 and "NaN" in gap.json()["error"]
