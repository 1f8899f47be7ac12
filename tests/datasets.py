"""Test data built from scikit-learn's bundled datasets (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes


def cancer_frame() -> pd.DataFrame:
    """Binary classification: 569 rows, 30 numeric features, one categorical, text labels."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :10].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(0)
    frame["clinic"] = rng.choice(["north", "south", "east"], size=len(frame))
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    return frame


def diabetes_frame() -> pd.DataFrame:
    """Regression: 442 rows, 10 numeric features, target `progression`."""
    data = load_diabetes(as_frame=True)
    frame = data.frame.rename(columns={"target": "progression"})
    return frame


def big_frame(rows: int = 350_000) -> pd.DataFrame:
    """A generated classification table big enough for successive halving (`y`, six columns)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows, n_features=6, n_informative=4, flip_y=0.05, random_state=0
    )
    frame = pd.DataFrame(X.round(4), columns=[f"x{i}" for i in range(6)])
    frame["y"] = np.where(y == 1, "yes", "no")
    return frame
