"""Data checks on a new drop: columns added, missing or changed, and drift per feature, judged
by the spec's `validation` rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from services.console.present import schema_summary
from services.ingest.ingestion import profile_table
from services.ingest.validation import compare, families, sample_table
from shared.drift import reference
from shared.signature import input_signature
from shared.spec import Validation


def table(rows: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50 + shift * 10, 10, rows),
            "tenure": rng.integers(0, 40, rows),
            "city": rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]),
            "churn": rng.choice(["yes", "no"], rows),
        }
    )


TRAINED = table(3000, seed=0)
FEATURES = TRAINED.drop(columns=["churn"])
INPUTS = input_signature(FEATURES)
REFERENCE = reference(FEATURES)


def check(new: pd.DataFrame, rules: Validation, *, ref: dict | None = REFERENCE) -> dict:
    return compare(
        version=3,
        inputs=INPUTS,
        reference=ref,
        columns=families(profile_table(new), empty=[]),
        frame=new.drop(columns=["churn"]),
        target="churn",
        rules=rules,
        empty=[],
    )


def test_the_same_data_passes_with_nothing_to_say() -> None:
    result = check(table(1000, seed=1), Validation(on_schema_change="fail", max_drift=0.25))
    assert result["schema"] == {"added": [], "missing": [], "changed": []}
    assert set(result["drift"]) == {"income", "tenure", "city"}
    assert max(result["drift"].values()) < 0.1
    assert result["warnings"] == [] and result["failures"] == []


def test_a_missing_column_fails_under_fail_and_warns_under_warn() -> None:
    new = table(1000, seed=1).drop(columns=["tenure"])
    failed = check(new, Validation(on_schema_change="fail"))
    assert failed["schema"]["missing"] == ["tenure"]
    assert failed["failures"] == [
        "column 'tenure' is missing from this drop but the production model (v3) was trained "
        "with it. Fix the file, or set validation.on_schema_change: warn in the spec to train "
        "anyway"
    ]
    warned = check(new, Validation(on_schema_change="warn"))
    assert warned["failures"] == []
    assert warned["warnings"] == [
        "column 'tenure' is missing from this drop but the production model (v3) was trained "
        "with it"
    ]


def test_added_and_retyped_columns_are_changes_but_integers_turned_decimals_are_not() -> None:
    new = table(1000, seed=1).assign(
        income=lambda f: f.income.round().astype("Int64").where(f.index % 9 != 0),  # gaps
        tenure=lambda f: f.tenure.astype(str) + " years",
        region="west",
    )
    new["tenure"] = new["tenure"].astype(object)
    result = check(new, Validation())
    assert result["schema"] == {
        "added": ["region"],
        "missing": [],
        "changed": [{"column": "tenure", "was": "number", "now": "text"}],
    }
    assert "tenure" not in result["drift"]  # its change is the news, not its index
    assert result["warnings"][:2] == [
        "column 'region' is new in this drop: the production model (v3) was not trained with it",
        "column 'tenure' holds text in this drop but held numbers when the production model "
        "(v3) was trained",
    ]


def test_a_shift_over_max_drift_fails_naming_the_feature_and_its_index() -> None:
    result = check(table(1000, seed=1, shift=2.0), Validation(max_drift=0.25))
    assert result["drift"]["income"] > 1.0 and result["drift"]["city"] < 0.25
    (failure,) = result["failures"]
    value = result["drift"]["income"]
    assert failure.startswith(
        "feature 'income' has shifted from the training data of the production model (v3): "
        f"population stability index {value:.3f}, over validation.max_drift 0.25"
    )
    assert "city" not in failure


def test_without_max_drift_a_shift_only_warns() -> None:
    result = check(table(1000, seed=1, shift=2.0), Validation(on_schema_change="fail"))
    assert result["failures"] == []
    assert result["warnings"] == [
        "feature 'income' has shifted from the training data of the production model (v3): "
        f"population stability index {result['drift']['income']:.3f}, over the warning level 0.2"
    ]


def test_a_version_without_reference_compares_columns_only() -> None:
    result = check(table(200, seed=1, shift=3.0), Validation(max_drift=0.1), ref=None)
    assert result["drift"] == {} and result["failures"] == []
    assert "before versions kept their training distributions" in result["note"]


def test_dates_compare_by_the_form_they_are_written_in() -> None:
    days = pd.Series(pd.date_range("2024-01-01", periods=60, freq="D"))
    trained = pd.DataFrame({"day": days.dt.strftime("%Y-%m-%d"), "churn": ["a", "b"] * 30})
    inputs = [{"name": "day", "type": "string", "format": "iso"}]
    new = trained.assign(day=days.dt.strftime("%d/%m/%Y"))
    result = compare(
        version=1,
        inputs=inputs,
        reference=None,
        columns=families(profile_table(new), empty=[]),
        frame=new,
        target="churn",
        rules=Validation(),
        empty=[],
    )
    (change,) = result["schema"]["changed"]
    assert change["was"] == "date (iso)" and change["now"].startswith("date (")
    assert change["now"] != "date (iso)"


def test_the_sample_is_seeded_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    frame = table(5000, seed=2)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)
    sample = sample_table(path, ["income", "city"], rows=1000)
    assert list(sample.columns) == ["income", "city"] and len(sample) == 1000
    assert sample.equals(sample_table(path, ["income", "city"], rows=1000))
    assert set(sample.income) <= set(frame.income)
    assert len(sample_table(path, ["income"], rows=10_000)) == 5000


def test_the_run_page_sums_the_column_differences_up_in_a_few_words() -> None:
    assert schema_summary({"added": [], "missing": [], "changed": []}) == "the same columns"
    changed = [{"column": "tenure", "was": "number", "now": "text"}]
    assert schema_summary({"added": ["region"], "missing": ["a", "b"], "changed": changed}) == (
        "missing a, b; new region; tenure was number, now text"
    )
