"""Tables with gaps, as real tables have: the trained model still exports to ONNX, passes the
parity check, is served by onnxruntime, and answers rows sent with nulls as scikit-learn does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from shared.artifacts import load_model
from shared.layout import spec_key, version_key
from tests.e2e.conftest import Stack
from tests.e2e.helpers import wait_served

ONE_MODEL = "models:\n  - estimator: {estimator}\ntuning: {{trials: 1}}\n"


def gappy_frame(rows: int = 400, seed: int = 5) -> pd.DataFrame:
    """Numbers, whole numbers, text and flags, each with about one value in eight missing; the
    target leans on the most frequent region, so a gap imputed wrongly moves the answer far."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "area": rng.normal(90, 30, rows).round(1),
            "rooms": rng.integers(1, 7, rows),
            "region": rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]),
            "garden": rng.choice([True, False], rows),
        }
    )
    price = (
        1000 * frame["area"]
        + 5000 * frame["rooms"]
        + 60000 * (frame["region"] == "north")
        + 20000 * frame["garden"]
        + rng.normal(0, 5000, rows)
    )
    frame["price"] = price.round(0)
    frame["band"] = np.where(price > price.median(), "high", "low")
    for column in ("area", "rooms", "region", "garden"):
        frame[column] = frame[column].astype(object).where(rng.random(rows) > 0.12, None)
    return frame


# Rows as a client sends them: JSON nulls in every kind of column, and in several at once.
ROWS = [
    [None, 3, "north", True],
    [120.5, None, "south", False],
    [75.0, 2, None, True],
    [80.0, 4, "east", None],
    [None, None, None, None],
    [95.0, 3, "north", False],
]
COLUMNS = ["area", "rooms", "region", "garden"]


def submitted(stack: Stack, tmp_path: Path, pipeline: str, frame: pd.DataFrame) -> dict[str, Any]:
    """Submit the table with its spec, wait for the run, and return the version's record."""
    data = tmp_path / f"{pipeline}.csv"
    frame.to_csv(data, index=False)
    run = stack.cli_json("submit", str(data), "--pipeline", pipeline, "--wait")
    assert run["state"] == "succeeded", run["error"]
    record = dict(stack.store.get_json(version_key(pipeline, run["model_version"])))
    wait_served(stack.settings.serve_url, pipeline, record["version"])
    return record


def scikit_learn(stack: Stack, record: dict[str, Any]) -> Any:
    """The version's scikit-learn pipeline, from its skops file (never unpickled)."""
    skops = version_key(record["pipeline"], record["version"], record["artifact"])
    return load_model(stack.store.get_bytes(skops))


def as_fitted(rows: list[list[Any]]) -> pd.DataFrame:
    """The rows as scikit-learn sees a table with gaps: NaN for every missing value."""
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"area": float, "rooms": float})
    frame["region"] = frame["region"].astype("str")
    frame["garden"] = frame["garden"].astype(object).where(frame["garden"].notna(), np.nan)
    return frame


def oip_inputs(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """The rows as Open Inference Protocol v2 inputs, a JSON null for each gap."""
    kinds = {"area": "FP64", "rooms": "FP64", "region": "BYTES", "garden": "BOOL"}
    return [
        {"name": name, "shape": [len(rows)], "datatype": kinds[name], "data": [r[i] for r in rows]}
        for i, name in enumerate(COLUMNS)
    ]


@pytest.mark.parametrize(
    ("pipeline", "target", "estimator"),
    [
        ("gaps-ridge", "price", "ridge"),
        ("gaps-boosting", "band", "hist_gradient_boosting"),
    ],
)
def test_a_model_trained_on_gaps_is_served_by_onnx_as_scikit_learn_answers(
    stack: Stack, tmp_path: Path, pipeline: str, target: str, estimator: str
) -> None:
    frame = gappy_frame().drop(columns=[{"price": "band", "band": "price"}[target]])
    spec = f"target: {target}\n" + ONE_MODEL.format(estimator=estimator)
    stack.store.put_bytes(spec_key(pipeline), spec.encode())
    record = submitted(stack, tmp_path, pipeline, frame)

    check = record["onnx"]
    assert check["passed"] is True and check["file"] == "model.onnx", check
    assert check["rows"] > 50 and check["label_agreement"] == 1.0
    assert record["runtime"] == "onnx" and record["runtime_reason"] is None

    url = stack.settings.serve_url
    listing = requests.get(f"{url}/v2/models", timeout=10).json()["models"]
    assert {m["name"]: m["runtime"] for m in listing}[pipeline] == "onnx"
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    answer = requests.post(f"{url}/invocations/{pipeline}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    model = scikit_learn(stack, record)
    expected = model.predict(as_fitted(ROWS))
    if target == "price":
        assert np.allclose(got["predictions"], expected, rtol=1e-4), (got, expected)
    else:
        assert got["predictions"] == expected.tolist()
        proba = model.predict_proba(as_fitted(ROWS))
        labels = [str(c) for c in model.classes_]
        served = np.array([[p[c] for c in labels] for p in got["probabilities"]])
        assert np.allclose(served, proba, atol=1e-5)
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    by_records = requests.post(
        f"{url}/invocations/{pipeline}", json={"dataframe_records": records}, timeout=10
    ).json()
    assert by_records["predictions"] == got["predictions"]
    v2 = requests.post(
        f"{url}/v2/models/{pipeline}/infer", json={"inputs": oip_inputs(ROWS)}, timeout=10
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == got["predictions"]

    shown = stack.cli_json("models", pipeline)
    assert [(m["version"], m["runtime"], m["runtime_reason"]) for m in shown] == [
        (record["version"], "onnx", None)
    ]
    line = stack.cli("models", pipeline).stdout
    assert " onnx " in line and "served by" not in line, line
