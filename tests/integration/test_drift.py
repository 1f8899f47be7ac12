"""Drift from the prediction log: near zero for traffic drawn from the training data, over the
threshold for shifted numbers and categories, written as a report and raised per feature."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from services.preprocess.features import build_transformer
from services.watcher.monitor import check_drift
from shared.config import Settings
from shared.drift import reference
from shared.layout import drift_key, drift_prefix, prediction_log_prefix
from shared.storage import Store
from tests.datasets import cancer_frame
from tests.integration.serve_support import deploy, logging_service


@pytest.fixture(scope="module")
def cancer() -> tuple[Pipeline, pd.DataFrame]:
    frame = cancer_frame()
    X, y = frame.drop(columns=["diagnosis"]), frame["diagnosis"]
    model = Pipeline(
        [("features", build_transformer(X)), ("model", LogisticRegression(max_iter=1000))]
    ).fit(X, y)
    return model, X


@contextmanager
def serving(settings: Settings, store: Store, model: Pipeline, X: pd.DataFrame) -> Iterator[str]:
    """The cancer model deployed with its reference and every request logged."""
    baseline = reference(X)
    baseline["prediction"] = reference(pd.DataFrame({"prediction": model.predict(X)}))["features"][
        "prediction"
    ]
    deploy(
        store,
        "cancer",
        model,
        X,
        task="classification",
        target="diagnosis",
        run_id="r1",
        monitoring={"sample": 1.0, "window_hours": 1, "drift_threshold": 0.2},
        files={"reference.json": json.dumps(baseline).encode()},
    )
    with logging_service(settings, store) as (url, _log):
        yield url


def send(url: str, rows: pd.DataFrame) -> None:
    """The rows, ten per request, as a client would send them."""
    for start in range(0, len(rows), 10):
        records = rows.iloc[start : start + 10].to_dict(orient="records")
        answer = requests.post(f"{url}/invocations/cancer", json={"instances": records}, timeout=10)
        assert answer.status_code == 200, answer.text


def logged_rows(store: Store) -> int:
    return sum(
        len(pd.read_parquet(io.BytesIO(store.get_bytes(o.key))))
        for o in store.list_objects(prediction_log_prefix("cancer"))
    )


def drift_of(store: Store, url: str, rows: pd.DataFrame) -> tuple[dict, list[tuple]]:
    send(url, rows)
    deadline = time.monotonic() + 20
    while logged_rows(store) < len(rows):
        assert time.monotonic() < deadline, "the log did not catch up"
        time.sleep(0.1)
    flagged: list[tuple] = []
    assert check_drift(store, now=datetime.now(UTC), flagged=lambda *a: flagged.append(a)) == 1
    dated, latest = sorted(o.key for o in store.list_objects(drift_prefix("cancer")))
    assert latest == drift_key("cancer", "latest")
    assert store.get_json(dated) == store.get_json(latest)
    return store.get_json(latest), flagged


def test_traffic_like_the_training_data_drifts_next_to_nothing(
    settings: Settings, store: Store, cancer: tuple[Pipeline, pd.DataFrame]
) -> None:
    model, X = cancer
    with serving(settings, store, model, X) as url:
        report, flagged = drift_of(store, url, X.sample(n=400, random_state=1))
    entry = report["versions"]["1"]
    assert entry["rows"] == 400 and entry["over"] == [] and flagged == []
    assert max(entry["drift"].values()) < 0.1, entry["drift"]
    assert set(entry["drift"]) == {*X.columns, "prediction"}


def test_shifted_numbers_and_categories_pass_the_threshold(
    settings: Settings, store: Store, cancer: tuple[Pipeline, pd.DataFrame]
) -> None:
    model, X = cancer
    shifted = X.sample(n=400, random_state=2)
    shifted["mean_radius"] = shifted["mean_radius"] * 1.5
    shifted["clinic"] = "north"
    with serving(settings, store, model, X) as url:
        report, flagged = drift_of(store, url, shifted)
        metrics = requests.get(f"{url}/metrics", timeout=10).text
    entry = report["versions"]["1"]
    assert {"mean_radius", "clinic"} <= set(entry["over"]), entry
    assert entry["drift"]["mean_texture"] < 0.1
    assert next(iter(entry["drift"])) in entry["over"]  # the worst first
    assert ("cancer", 1, "clinic", entry["drift"]["clinic"], 0.2) in flagged
    gauge = 'cauce_feature_drift{feature="clinic",pipeline="cancer",version="1"}'
    (line,) = [m for m in metrics.splitlines() if m.startswith(gauge)]
    assert float(line.split()[-1]) == pytest.approx(entry["drift"]["clinic"])
