"""Split a validated table and build the feature transformer that every candidate model shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from shared.dates import DateParts
from shared.errors import DataError, SpecError, plain
from shared.plugins import build_step
from shared.signature import input_signature
from shared.spec import MIN_ROWS_PER_CLASS, FeatureStepSpec

__all__ = ["build_features", "build_transformer", "date_columns", "input_signature", "split_frame"]

# Beyond this many categories one-hot columns swamp the numbers; ordinal codes stay one column.
ONE_HOT_MAX_CATEGORIES = 20


def _check_fractions(test: float, validation: float) -> None:
    for field, value in (("test", test), ("validation", validation)):
        if not 0 < value < 1:
            raise SpecError(f"split {field} must be between 0 and 1, got {value}", field=field)
    if test + validation >= 1:
        raise SpecError(
            f"split test + validation is {test + validation:g}; it must stay below 1 "
            "so that rows remain for training",
            field="validation",
        )


def _check_classes(y: pd.Series) -> None:
    counts = y.value_counts()
    small = counts[counts < MIN_ROWS_PER_CLASS]
    if len(small):
        label, count = small.index[0], int(small.iloc[0])
        raise DataError(
            f"class {plain(label)!r} of target {y.name!r} has only {count} row(s); a stratified "
            f"train/validation/test split needs at least {MIN_ROWS_PER_CLASS} per class: "
            "add rows for it or remove that class",
            field=str(y.name),
        )


def _split(
    rows: np.ndarray, *, size: float, seed: int, stratify: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    try:
        rest, held = train_test_split(rows, test_size=size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(
            f"cannot split {len(rows)} rows with a {size:.0%} hold-out ({exc}); "
            "add rows or raise the test/validation fractions",
        ) from exc
    return rest, held


def split_frame(
    df: pd.DataFrame, *, target: str, task: str, test: float, validation: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Split rows into train, validation and test, stratified on the target for classes.

    Row numbers are split, and each part taken once: the same rows as splitting the frame
    itself, in a quarter of the time on a million rows. The classes are stratified as integer
    codes in sorted order, which is what scikit-learn makes of the labels themselves.
    """
    _check_fractions(test, validation)
    classify = task == "classification"
    if classify:
        _check_classes(df[target])
    codes = pd.factorize(df[target], sort=True)[0] if classify else None
    rest, test_rows = _split(np.arange(len(df)), size=test, seed=seed, stratify=codes)
    # The validation fraction is of the whole table, so rescale it to what is left after test.
    share = validation / (1 - test)
    strata = codes[rest] if codes is not None else None
    train_rows, val_rows = _split(rest, size=share, seed=seed, stratify=strata)
    return {
        "train": df.take(train_rows),
        "validation": df.take(val_rows),
        "test": df.take(test_rows),
    }


def _is_categorical(column: pd.Series) -> bool:
    dtype = column.dtype
    return bool(
        pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _column_groups(X: pd.DataFrame) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"numeric": [], "onehot": [], "ordinal": []}
    for name in X.columns:
        column = X[name]
        if _is_categorical(column):
            wide = column.nunique(dropna=True) > ONE_HOT_MAX_CATEGORIES
            groups["ordinal" if wide else "onehot"].append(str(name))
        elif pd.api.types.is_numeric_dtype(column.dtype):
            groups["numeric"].append(str(name))
    # Datetimes and other exotic columns fall to remainder="drop" rather than being guessed at.
    return groups


def _pipelines() -> dict[str, Pipeline]:
    most_frequent = SimpleImputer(strategy="most_frequent", keep_empty_features=True)
    median = SimpleImputer(strategy="median", keep_empty_features=True)
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    return {
        "numeric": Pipeline([("impute", median), ("scale", StandardScaler())]),
        "onehot": Pipeline([("impute", most_frequent), ("encode", onehot)]),
        "ordinal": Pipeline([("impute", clone(most_frequent)), ("encode", ordinal)]),
    }


def build_features(
    X: pd.DataFrame,
    *,
    steps: Sequence[FeatureStepSpec] = (),
    builtin: bool = True,
    dates: Mapping[str, str] | None = None,
) -> Pipeline | ColumnTransformer:
    """The unfitted feature transformer of a spec: its installed feature steps (shared.plugins),
    in order, then the built-in imputation and encoding (unless `builtin` is off) for the
    columns the steps leave. The steps are fitted on X here to see those columns."""
    if not steps:
        return build_transformer(X, dates=dates)
    named = [(f"{i}:{s.use}", build_step(s.use, s.params)) for i, s in enumerate(steps)]
    for _, step in named:  # the built-in encoding picks columns by name: steps give frames
        if hasattr(step, "set_output"):
            step.set_output(transform="pandas")
    fitted = Pipeline([(name, clone(step)) for name, step in named])
    fitted.set_output(transform="pandas")
    try:
        after = fitted.fit_transform(X)
    except Exception as exc:  # the user's code: its message is what a person needs
        raise DataError(
            f"feature step failed on the training split: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(after, pd.DataFrame):
        raise DataError(f"feature steps must return a pandas frame, got {type(after).__name__}")
    if builtin:  # the date columns the steps leave are expanded, then encoded
        left = {name: form for name, form in (dates or {}).items() if name in after.columns}
        tail = build_transformer(after, dates=left)
        return Pipeline(
            [*named, *(tail.steps if isinstance(tail, Pipeline) else [("columns", tail)])]
        )
    _check_numbers(after)
    return Pipeline(named)


def _check_numbers(frame: pd.DataFrame) -> None:
    """With `builtin: false` the steps' output is what the estimators get: numbers only."""
    text = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    if text:
        raise DataError(
            f"with features.builtin: false the feature steps must leave only numbers; "
            f"{', '.join(text[:5])} {'is' if len(text) == 1 else 'are'} not: encode "
            "them in a step or keep the built-in encoding",
            field="features.builtin",
        )


def date_columns(profile: dict[str, Any], columns: Iterable[str]) -> dict[str, str]:
    """The columns ingest's profile found to hold dates, each with its form (shared.datetext)."""
    found = profile.get("columns", {})
    return {
        name: found[name]["format"]
        for name in columns
        if profile.get("schema", {}).get(name) == "datetime" and found[name].get("format")
    }


def build_transformer(
    X: pd.DataFrame, *, dates: Mapping[str, str] | None = None
) -> ColumnTransformer | Pipeline:
    """Build an unfitted transformer: median+scale for numbers, impute+encode for categories,
    after the `dates` columns (name -> form) are expanded into numbers by DateParts.

    Gaps must be NaN, as read_table and shared.runtime.frame give them; the imputers skip None.
    """
    if dates:
        return _with_dates(X, dates)
    pipelines = _pipelines()
    steps = [(kind, pipelines[kind], cols) for kind, cols in _column_groups(X).items() if cols]
    if not steps:
        raise DataError(
            "no usable feature columns: features must be numbers, booleans or text; "
            "add such a column to the table",
        )
    return ColumnTransformer(steps, remainder="drop", sparse_threshold=0.0)


def _with_dates(X: pd.DataFrame, dates: Mapping[str, str]) -> Pipeline:
    """DateParts, then the built-in encoding of what it gives: the parts are numbers. DateParts
    is in front of the ColumnTransformer, not inside it, so that deploy can export the rest to
    ONNX with the parts as inputs (serving expands the dates with the same code)."""
    parts = DateParts(dict(dates)).fit(X)  # which dates carry times, so which parts there are
    names = [str(n) for n in parts.get_feature_names_out()]
    expanded = X.assign(**{name: 0.0 for name in names if name not in X.columns})[names]
    return Pipeline([("dates", parts), ("columns", build_transformer(expanded))])
