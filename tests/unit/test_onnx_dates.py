"""A model trained on date columns: the transformer expands them before encoding, the ONNX
export takes their parts as inputs and answers as scikit-learn does, and a process serving it
through ONNX expands the dates itself, without pandas or scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from services.batch.scoring import BatchModel, chunks, score_chunk
from services.deploy.export import export_checked
from services.preprocess.features import build_transformer
from services.train.training import join_model
from shared.artifacts import dump_model
from shared.columns import CompiledSignature
from shared.runtime import OnnxScorer, SklearnScorer
from shared.signature import input_signature

ROOT = Path(__file__).resolve().parents[2]
DATES = {"ordered": "%d/%m/%Y", "seen": "iso"}


def orders(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Orders dated day first (a few missing) and seen at a timestamp (Parquet's kind), with
    whether the order was placed at a weekend as the target."""
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    seen = days + pd.to_timedelta(rng.integers(0, 24 * 60, rows), unit="min")
    X = pd.DataFrame(
        {
            "ordered": pd.Series(days.strftime("%d/%m/%Y"), dtype="str"),
            "seen": seen,
            "amount": rng.normal(50, 10, rows),
            "shop": pd.Series(rng.choice(["web", "store"], rows), dtype="str"),
        }
    )
    X.loc[rng.random(rows) < 0.05, "ordered"] = np.nan
    weekend = np.where(np.asarray(days.day_of_week) >= 5, "weekend", "weekday")
    return X, weekend


def fitted(estimator: BaseEstimator, X: pd.DataFrame, y: np.ndarray) -> object:
    """The transformer preprocess builds for these dates, then the estimator, as train fits them."""
    features = build_transformer(X, dates=DATES).fit(X)
    return join_model(features, estimator.fit(features.transform(X), y))


@pytest.mark.parametrize(
    "estimator", [HistGradientBoostingClassifier(random_state=0), LogisticRegression()]
)
def test_a_classifier_on_dates_exports_to_onnx_and_answers_as_scikit_learn(
    estimator: BaseEstimator,
) -> None:
    X, y = orders(600, seed=1)
    model = fitted(estimator, X, y)
    onnx, check = export_checked(model, X, input_signature(X, dates=DATES), classify=True)
    assert check["passed"] and onnx is not None, check
    assert check["label_agreement"] == 1.0 and check["rows"] == 600
    known = X["ordered"].notna()
    assert (model.predict(X[known]) == y[known]).mean() > 0.95  # learnt from the weekday


def test_a_regressor_on_dates_exports_to_onnx() -> None:
    X, _ = orders(300, seed=2)
    y = X["seen"].dt.hour.to_numpy() * 2.0
    model = fitted(RandomForestRegressor(n_estimators=10, random_state=0), X, y)
    onnx, check = export_checked(model, X, input_signature(X, dates=DATES), classify=False)
    assert check["passed"] and onnx is not None, check


def test_the_model_saves_with_skops_and_its_signature_takes_dates_as_text() -> None:
    X, y = orders(100, seed=3)
    dump_model(fitted(LogisticRegression(), X, y))  # refuses any type outside the allow-list
    assert input_signature(X, dates=DATES)[:2] == [
        {"name": "ordered", "type": "string", "format": "%d/%m/%Y"},
        {"name": "seen", "type": "string", "format": "iso"},
    ]
    assert build_transformer(X.drop(columns=list(DATES))).__class__.__name__ == (
        "ColumnTransformer"  # no dates: the transformer it always was
    )


def test_batch_scoring_reads_dates_from_csv_text_and_parquet_timestamps(tmp_path: Path) -> None:
    X, y = orders(300, seed=5)
    model = fitted(HistGradientBoostingClassifier(random_state=0), X, y)
    signature = input_signature(X, dates=DATES)
    onnx, _ = export_checked(model, X, signature, classify=True)
    assert onnx is not None
    X.to_csv(tmp_path / "rows.csv", index=False)
    X.to_parquet(tmp_path / "rows.parquet", index=False)
    inputs = CompiledSignature.compile(signature)
    for scorer in (OnnxScorer(onnx, classify=True), SklearnScorer(model, True)):
        batch = BatchModel(inputs, scorer, labels=["weekday", "weekend"])
        for name in ("rows.csv", "rows.parquet"):
            (frame,) = chunks(tmp_path / name, rows=1000)
            scored = score_chunk(batch, frame, first_row=1)
            assert scored["prediction"].tolist() == model.predict(X).tolist(), (scorer, name)


SERVING = """
import json, sys
import services.serve, services.serve.invoke  # what a granian worker imports
from shared.columns import CompiledSignature
from shared.runtime import OnnxScorer
spec, rows = json.loads(sys.argv[2]), json.loads(sys.argv[3])
scorer = OnnxScorer(open(sys.argv[1], "rb").read(), classify=True)
columns = {s["name"]: [row[i] for row in rows] for i, s in enumerate(spec)}
scored = scorer.score(CompiledSignature.compile(spec).check(columns))
heavy = ("pandas", "sklearn", "scipy", "skops", "pyarrow")
print(json.dumps({
    "predictions": scored.predictions.tolist(),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
}))
"""


def test_a_process_serving_dates_through_onnx_never_imports_pandas(tmp_path: Path) -> None:
    X, y = orders(600, seed=4)
    model = fitted(HistGradientBoostingClassifier(random_state=0), X, y)
    signature = input_signature(X, dates=DATES)
    onnx, _ = export_checked(model, X, signature, classify=True)
    assert onnx is not None
    (tmp_path / "model.onnx").write_bytes(onnx)
    rows = [  # a Saturday and a Wednesday
        ["06/01/2024", "2024-01-06T09:15:00", 50.0, "web"],
        ["10/01/2024", "2024-01-10 18:00", 45.0, "store"],
    ]
    args = [str(tmp_path / "model.onnx"), json.dumps(signature), json.dumps(rows)]
    run = [sys.executable, "-c", SERVING, *args]
    out = json.loads(
        subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    )
    assert out == {"predictions": ["weekend", "weekday"], "heavy": []}
