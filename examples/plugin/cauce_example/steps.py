"""The example feature step: a ratio of two columns, as a scikit-learn transformer on frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class Ratio(TransformerMixin, BaseEstimator):
    """Add `numerator / denominator` as the column `name` (a gap where either is missing or the
    denominator is 0); every other column passes through."""

    def __init__(self, numerator: str = "", denominator: str = "", name: str = "") -> None:
        self.numerator = numerator
        self.denominator = denominator
        self.name = name

    def fit(self, X: pd.DataFrame, y: Any = None) -> Ratio:
        missing = [c for c in (self.numerator, self.denominator) if c not in X.columns]
        if missing:
            raise ValueError(f"example.ratio: no column {missing[0]!r} in the table")
        self.column_ = self.name or f"{self.numerator}_per_{self.denominator}"
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        top = pd.to_numeric(X[self.numerator], errors="coerce").astype(float)
        bottom = pd.to_numeric(X[self.denominator], errors="coerce").astype(float)
        out = X.copy()
        out[self.column_] = (top / bottom.where(bottom != 0)).to_numpy()
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([*self.feature_names_in_, self.column_], dtype=object)
