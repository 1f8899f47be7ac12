"""The plain single-process script `make bench-scale` compares cauce with (bench/scale.py).

`python -m bench.scale_plain TABLE.csv` reads the CSV with pandas, imputes and one-hot encodes in
a ColumnTransformer, splits 60/20/20 (stratified, as cauce does, so both are scored on the same
test rows), fits one default HistGradientBoostingClassifier on the 60 and prints the accuracy on
the test 20 as JSON. The caller measures its wall time and peak RSS.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

TARGET = "target"


def main(path: str) -> None:
    """Fit and score one model on the table at `path`; print {"accuracy": ...}."""
    frame = pd.read_csv(path)
    y = frame.pop(TARGET)
    numbers = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    text = [c for c in frame.columns if c not in numbers]
    prepare = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), numbers),
            (
                "text",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                text,
            ),
        ]
    )
    # Stratified on the target, as cauce splits: the same test rows for both (cauce stratifies
    # on the classes' codes in sorted order, which is what train_test_split makes of the labels).
    x_rest, x_test, y_rest, y_test = train_test_split(
        frame, y, test_size=0.2, random_state=42, stratify=y
    )
    x_train, _, y_train, _ = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=42, stratify=y_rest
    )
    model = make_pipeline(prepare, HistGradientBoostingClassifier(random_state=0))
    model.fit(x_train, y_train)
    print(json.dumps({"accuracy": float(accuracy_score(y_test, model.predict(x_test)))}))


if __name__ == "__main__":
    main(sys.argv[1])
