"""Date columns as numbers a model can use: DateParts, the feature step that replaces each date
column with its year, month, day of week, hour and days since 1970 (read by shared.datetext).

It lives in shared/ because the prediction service loads skops models that contain it; its
fitted state is plain dicts, lists and flags, so skops needs to trust only the class itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from shared.datetext import has_times, parse, part_names, parts


def _dates(column: pd.Series, form: str) -> np.ndarray:
    """A column as datetime64[us]: timestamps (Parquet) as their wall-clock time, text by form."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column.to_numpy(dtype="datetime64[us]")
    return parse(column.tolist(), form)


class DateParts(TransformerMixin, BaseEstimator):
    """Replace each date column (name -> form, see shared.datetext) by its numeric parts, in
    place; other columns pass through. Unreadable or missing dates give NaN parts."""

    def __init__(self, columns: dict[str, str]) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> DateParts:
        """Learn the input columns and which date columns carry times of day (they get an hour)."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **params: Any) -> pd.DataFrame:
        """fit, then transform, reading each date column once (parsing is most of the cost)."""
        missing = [name for name in self.columns if name not in X.columns]
        if missing:
            raise ValueError(f"date column {missing[0]!r} is not in the data")
        self.feature_names_in_ = [str(name) for name in X.columns]
        self.n_features_in_ = len(self.feature_names_in_)
        dates = {name: _dates(X[name], form) for name, form in self.columns.items()}
        self.hours_ = {name: has_times(when) for name, when in dates.items()}
        return self._expand(X, dates)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The frame with each date column replaced by its parts (float64, NaN where unknown)."""
        check_is_fitted(self, "hours_")
        return self._expand(X, {name: _dates(X[name], form) for name, form in self.columns.items()})

    def _expand(self, X: pd.DataFrame, dates: dict[str, np.ndarray]) -> pd.DataFrame:
        out: dict[str, Any] = {}
        for name in self.feature_names_in_:
            if name not in dates:
                out[name] = X[name]
                continue
            hour = self.hours_[name]
            found = parts(dates[name], hour=hour)
            out.update(zip(part_names(name, hour=hour), found.values(), strict=True))
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output columns: inputs in order, a date column's place taken by its parts."""
        check_is_fitted(self, "hours_")
        names: list[str] = []
        for name in self.feature_names_in_:
            hour = self.hours_.get(name)
            names += [name] if hour is None else part_names(name, hour=hour)
        return np.asarray(names, dtype=object)
