"""Drift by the population stability index: near zero for the same data, large for a shift."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shared.drift import feature_drift, psi, reference


def table(
    rows: int, *, seed: int, shift: float = 0.0, cities: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50 + shift * 10, 10, rows),
            "visits": rng.integers(0, 5, rows),
            "city": rng.choice(["north", "south", "east"], rows, p=list(cities)),
            "member": rng.random(rows) < 0.3,
        }
    )


def test_the_same_distribution_drifts_next_to_nothing() -> None:
    ref = reference(table(5000, seed=0))
    drift = feature_drift(ref, table(2000, seed=1))
    assert set(drift) == {"income", "visits", "city", "member"}
    assert max(drift.values()) < 0.02, drift
    json.dumps(ref)  # kept in the bucket as JSON


def test_a_shifted_number_and_category_drift_past_the_threshold() -> None:
    ref = reference(table(5000, seed=0))
    drift = feature_drift(ref, table(2000, seed=1, shift=1.0, cities=(0.1, 0.2, 0.7)))
    assert drift["income"] > 0.25 and drift["city"] > 0.25, drift
    assert drift["visits"] < 0.02 and drift["member"] < 0.02, drift


def test_gaps_and_unseen_values_count_as_buckets_of_their_own() -> None:
    ref = reference(table(5000, seed=0))
    served = table(1000, seed=2)
    served.loc[:499, "income"] = np.nan
    served.loc[:499, "city"] = "west"
    drift = feature_drift(ref, served)
    assert drift["income"] > 1 and drift["city"] > 1, drift
    assert ref["features"]["city"]["categories"] == ["north", "south", "east"]
    assert len(ref["features"]["income"]["edges"]) == 9


def test_psi_refuses_buckets_that_do_not_line_up() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    with pytest.raises(ValueError, match="2 expected buckets but 3"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])
