"""The issue's model for `make bench-serving`: 12 numeric and 3 categorical features, a binary
target, trained by cauce's own pipeline (scaling and one-hot in a ColumnTransformer, then
HistGradientBoostingClassifier), and the request bodies both servers are loaded with. With
`gaps`, the same table and requests with that share of every feature's values missing (JSON
null in a request), as real tables have."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = [f"x{i:02d}" for i in range(1, 13)]
CATEGORIES = {
    "plan": ["basic", "plus", "pro"],
    "region": ["north", "south", "east", "west"],
    "device": ["ios", "android", "web", "desktop", "tv"],
}
TARGET = "churned"
SPEC = """target: churned
task: classification
models:
  - estimator: hist_gradient_boosting
    search: {learning_rate: [0.1], max_depth: [6]}
tuning: {trials: 1}
"""


def make_frame(rows: int, *, seed: int = 7, gaps: float = 0.0) -> pd.DataFrame:
    """Generated rows whose target depends on a few numbers and one category, with noise, and
    a `gaps` share of each feature's values missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=rows).round(4) for name in NUMERIC})
    for name, values in CATEGORIES.items():
        frame[name] = rng.choice(values, size=rows)
    score = (
        frame["x01"]
        - 0.7 * frame["x02"]
        + 0.5 * frame["x03"] * frame["x04"]
        + (frame["plan"] == "basic") * 0.8
    )
    frame[TARGET] = np.where(score + rng.normal(scale=0.8, size=rows) > 0.3, "yes", "no")
    if gaps:
        for name in [*NUMERIC, *CATEGORIES]:
            frame[name] = frame[name].where(rng.random(rows) >= gaps, np.nan)
    return frame


def write_dataset(path: Path, rows: int = 20_000, *, gaps: float = 0.0) -> Path:
    """The training CSV."""
    make_frame(rows, gaps=gaps).to_csv(path, index=False)
    return path


def bodies(rows_per_request: int, *, count: int = 1, gaps: float = 0.0) -> list[bytes]:
    """`count` distinct MLflow `dataframe_split` bodies of `rows_per_request` rows each."""
    rows = rows_per_request * count
    features = make_frame(rows * (4 if gaps else 1), seed=11, gaps=gaps).drop(columns=[TARGET])
    if gaps and rows_per_request == 1:  # one-row bodies each with a gap in it
        features = features[features.isna().any(axis=1)]
    features = features.head(rows)
    columns = list(features.columns)
    out = []
    for start in range(0, len(features), rows_per_request):
        chunk = features.iloc[start : start + rows_per_request]
        data = [[_plain(v) for v in row] for row in chunk.itertuples(index=False)]
        out.append(json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode())
    return out


def _plain(value: object) -> object:
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return None if isinstance(value, float) and np.isnan(value) else value
