"""A table with dates, as a user drops it: the profile says which columns are dates, the model
learns from their parts, and the served model answers rows whose dates are text."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import requests

from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run, wait_served

SPEC = b"target: day\nmodels: [{estimator: random_forest}]\ntuning: {trials: 2}\n"


def orders(rows: int = 400) -> pd.DataFrame:
    """Orders dated day first as text and paid at a Parquet timestamp; the target is whether
    the order was placed at a weekend."""
    rng = np.random.default_rng(7)
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 366, rows), unit="D")
    weekend = np.asarray(days.day_of_week) >= 5
    return pd.DataFrame(
        {
            "order_date": days.strftime("%d/%m/%Y"),
            "paid_at": days + pd.to_timedelta(rng.integers(0, 3 * 24 * 60, rows), unit="min"),
            "amount": rng.normal(50, 10, rows).round(2),
            "day": np.where(weekend, "weekend", "weekday"),
        }
    )


def test_a_table_with_dates_trains_on_their_parts_and_is_served_dates_as_text(
    stack: Stack,
) -> None:
    body = io.BytesIO()
    orders().to_parquet(body, index=False)
    stack.store.put_bytes("pipelines/orders.yaml", SPEC)
    stack.store.put_bytes("incoming/orders/2024.parquet", body.getvalue())
    run = wait_run(stack.store, run_for(stack.store, "incoming/orders/2024.parquet"))
    assert run["state"] == "succeeded", run["error"]
    assert run["metrics"]["accuracy"] > 0.95  # only the weekday of the order tells

    profile = stack.store.get_json(f"runs/{run['run_id']}/ingest/profile.json")
    assert profile["schema"]["order_date"] == profile["schema"]["paid_at"] == "datetime"
    assert profile["columns"]["order_date"]["format"] == "%d/%m/%Y"
    assert profile["columns"]["paid_at"]["format"] == "iso"
    page = requests.get(f"{stack.settings.console_url}/runs/{run['run_id']}", timeout=10).text
    assert "datetime <small>(%d/%m/%Y)</small>" in page

    version = stack.store.get_json(f"models/orders/versions/{run['model_version']}/version.json")
    assert version["runtime"] == "onnx", version["onnx"]
    assert version["signature"]["inputs"][:2] == [
        {"name": "order_date", "type": "string", "format": "%d/%m/%Y"},
        {"name": "paid_at", "type": "string", "format": "iso"},
    ]

    wait_served(stack.settings.serve_url, "orders", run["model_version"])
    url = f"{stack.settings.serve_url}/invocations/orders"
    rows = [  # Saturday 13 July, Wednesday 17 July, Sunday 1 December
        {"order_date": "13/07/2024", "paid_at": "2024-07-13T10:00:00", "amount": 48.0},
        {"order_date": "17/07/2024", "paid_at": "2024-07-18 09:30", "amount": 52.5},
        {"order_date": "01/12/2024", "paid_at": "2024-12-02T23:59:00Z", "amount": 50.0},
    ]
    answer = requests.post(url, json={"dataframe_records": rows}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == ["weekend", "weekday", "weekend"]

    bad = [{**rows[0], "order_date": "2024-07-13"}]
    answer = requests.post(url, json={"dataframe_records": bad}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["field"] == "order_date"
    assert "expects a date like 31/12/2024" in answer.json()["error"]
