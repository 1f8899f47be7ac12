"""Batch prediction as a user drives it: `cauce batch` through the watcher and the batch worker."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import wait_served


def test_batch_scores_a_file_with_the_production_model(stack: Stack, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    frame = cancer_frame()
    frame.to_csv(data, index=False)
    stack.cli("submit", str(data), "-p", "scored", "--target", "diagnosis", "--wait")
    rows = frame.drop(columns=["diagnosis"]).sample(150, random_state=3)
    batch = tmp_path / "to-score.csv"
    rows.to_csv(batch, index=False)
    out = tmp_path / "predictions.csv"

    result = stack.cli("batch", str(batch), "-p", "scored", "--output", str(out), "--json")
    status = json.loads(result.stdout)
    assert status["state"] == "succeeded", status
    assert (status["rows"], status["model_version"]) == (150, 1)
    assert status["output"].startswith(f"predictions/scored/{status['job_id']}/")
    predicted = pd.read_csv(out)
    assert len(predicted) == 150
    assert set(predicted["prediction"]) <= {"benign", "malignant"}
    # the answers agree with the prediction service's for the same rows
    wait_served(stack.settings.serve_url, "scored", 1)
    served = json.loads(stack.cli("predict", "scored", "--data", str(batch)).stdout)
    assert predicted["prediction"].tolist() == served["predictions"]


def test_a_batch_file_missing_a_column_fails_and_names_it(stack: Stack, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    cancer_frame().to_csv(data, index=False)
    stack.cli("submit", str(data), "-p", "scored2", "--target", "diagnosis", "--wait")
    rows = cancer_frame().drop(columns=["diagnosis", "mean_radius"]).head(5)
    bad = tmp_path / "bad.csv"
    rows.to_csv(bad, index=False)

    result = stack.cli("batch", str(bad), "-p", "scored2", "--wait", check=False)
    assert result.returncode == 1
    assert "failed" in result.stdout and "mean_radius" in result.stdout
    assert stack.store.head("batch/scored2/bad.csv").size == bad.stat().st_size  # kept
