"""How far served inputs have moved from the training data: each feature's reference
distribution, kept at training time, and the population stability index (PSI) against it.

A number's reference is its training deciles (quantile bins) with the share of rows in each; a
category's is the share of each of its most common values, with every other value in one
"other" bucket. Missing values are a bucket of their own in both. The PSI of a feature is
sum((actual - expected) * ln(actual / expected)) over its buckets, each share floored at
SHARE_FLOOR so that an empty bucket counts as very unlikely rather than impossible. By the usual
reading, under 0.1 is no shift, 0.1 to 0.25 a moderate one and over 0.25 a large one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

BINS = 10
TOP_CATEGORIES = 20
SHARE_FLOOR = 1e-4
DEFAULT_THRESHOLD = 0.2


def _number_reference(values: pd.Series, bins: int) -> dict[str, Any]:
    present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(present):
        cuts = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
        edges = sorted({float(c) for c in cuts})
    else:
        edges = []
    reference = {"kind": "number", "edges": edges}
    return {**reference, "shares": number_shares(reference, values)}


def _category_reference(values: pd.Series, top: int) -> dict[str, Any]:
    text = values.dropna().astype(str)
    categories = [str(c) for c in text.value_counts().index[:top]]
    reference = {"kind": "category", "categories": categories}
    return {**reference, "shares": category_shares(reference, values)}


def number_shares(reference: Mapping[str, Any], values: pd.Series) -> list[float]:
    """Shares of `values` in each of the reference's bins, then the missing share."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    present = numbers[~np.isnan(numbers)]
    counts = np.bincount(
        np.searchsorted(reference["edges"], present, side="left"),
        minlength=len(reference["edges"]) + 1,
    )
    return _shares([*counts.tolist(), int(len(numbers) - len(present))])


def category_shares(reference: Mapping[str, Any], values: pd.Series) -> list[float]:
    """Shares of `values` among the reference's categories, then "other", then missing."""
    missing = int(values.isna().sum())
    text = values.dropna().astype(str)
    counts = text.value_counts()
    known = [int(counts.get(c, 0)) for c in reference["categories"]]
    return _shares([*known, len(text) - sum(known), missing])


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def is_number(values: pd.Series) -> bool:
    """Whether a column is binned as a number (booleans and text are categories)."""
    dtype = values.dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def reference(
    frame: pd.DataFrame, *, bins: int = BINS, top: int = TOP_CATEGORIES
) -> dict[str, Any]:
    """Each column's reference distribution (JSON-ready), as drift compares served data with."""
    return {
        "rows": len(frame),
        "features": {
            str(name): _number_reference(frame[name], bins)
            if is_number(frame[name])
            else _category_reference(frame[name], top)
            for name in frame.columns
        },
    }


def shares(feature: Mapping[str, Any], values: pd.Series) -> list[float]:
    """Shares of `values` in the buckets of one feature's reference."""
    if feature["kind"] == "number":
        return number_shares(feature, values)
    return category_shares(feature, values)


def psi(expected: list[float], actual: list[float]) -> float:
    """The population stability index of `actual` bucket shares against `expected` ones."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected buckets but {len(actual)} actual ones")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, SHARE_FLOOR), max(a, SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def feature_drift(ref: Mapping[str, Any], frame: pd.DataFrame) -> dict[str, float]:
    """The PSI of each reference feature present in `frame` (an absent column is skipped)."""
    return {
        name: round(psi(feature["shares"], shares(feature, frame[name])), 6)
        for name, feature in ref["features"].items()
        if name in frame.columns
    }
