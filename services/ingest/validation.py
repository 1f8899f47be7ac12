"""Data checks on a new drop: how its columns and distributions differ from the data the
production model was trained on, and what the spec's `validation` section makes of it.

Columns are compared by family, not by exact type: whole numbers and decimals are both numbers
(a gap turns a column of integers into decimals, which changes nothing a model sees), so only
number, text, boolean and date (with its written form) count as a change. Drift is the population
stability index of each feature against the production version's reference.json, measured on a
seeded sample of at most SAMPLE_ROWS rows of the new table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared.drift import DEFAULT_THRESHOLD, feature_drift
from shared.errors import NotFound
from shared.layout import version_key
from shared.registry import get_alias
from shared.spec import Validation
from shared.storage import Store

SAMPLE_ROWS = 100_000
SEED = 0
TO_WARN = "set validation.on_schema_change: warn in the spec to train anyway"
# What each family reads as in a message.
FAMILY_WORDS = {"number": "numbers", "text": "text", "boolean": "booleans", "date": "dates"}


def profile_family(kind: str, form: str | None = None) -> str:
    """The family of a profile kind (integer, number, string, boolean, datetime)."""
    if kind == "datetime":
        return f"date ({form})" if form else "date"
    return {"integer": "number", "number": "number", "boolean": "boolean"}.get(kind, "text")


def signature_family(column: Mapping[str, Any]) -> str:
    """The family of a signature column (MLflow long, double, string, boolean; dates as text)."""
    if column.get("format"):
        return f"date ({column['format']})"
    return {"long": "number", "double": "number", "boolean": "boolean"}.get(
        str(column.get("type")), "text"
    )


def schema_diff(
    inputs: Sequence[Mapping[str, Any]], families: Mapping[str, str], *, target: str
) -> dict[str, Any]:
    """Columns added, missing and changed in family between the signature and the new table's
    feature columns (name -> family); the target is left out of both sides."""
    before = {str(c["name"]): signature_family(c) for c in inputs if c["name"] != target}
    now = {name: family for name, family in families.items() if name != target}
    return {
        "added": [name for name in now if name not in before],
        "missing": [name for name in before if name not in now],
        "changed": [
            {"column": name, "was": before[name], "now": now[name]}
            for name in before
            if name in now and now[name] != before[name]
        ],
    }


def schema_messages(diff: Mapping[str, Any], *, version: int, empty: list[str]) -> list[str]:
    """One sentence per difference, naming the column and the production version."""
    model = f"the production model (v{version})"
    lines = []
    for name in diff["missing"]:
        where = "has no values in" if name in empty else "is missing from"
        lines.append(f"column {name!r} {where} this drop but {model} was trained with it")
    for name in diff["added"]:
        lines.append(f"column {name!r} is new in this drop: {model} was not trained with it")
    for change in diff["changed"]:
        was, now = (_words(change[k]) for k in ("was", "now"))
        lines.append(
            f"column {change['column']!r} holds {now} in this drop but held {was} when "
            f"{model} was trained"
        )
    return lines


def _words(family: str) -> str:
    head, _, form = family.partition(" ")
    return FAMILY_WORDS.get(head, head) + (f" {form}" if form else "")


def drift_messages(
    drift: Mapping[str, float], *, version: int, threshold: float, limit: str
) -> list[str]:
    """One sentence per feature whose index passes `threshold`, the worst first."""
    over = sorted((v, k) for k, v in drift.items() if v > threshold)[::-1]
    return [
        f"feature {name!r} has shifted from the training data of the production model "
        f"(v{version}): population stability index {value:.3f}, over {limit} {threshold:g}"
        for value, name in over
    ]


def judge(
    diff: Mapping[str, Any],
    drift: Mapping[str, float],
    *,
    version: int,
    rules: Validation,
    empty: list[str],
) -> tuple[list[str], list[str]]:
    """The warnings and the failures the spec's rules make of a comparison."""
    warnings: list[str] = []
    failures: list[str] = []
    changes = schema_messages(diff, version=version, empty=empty)
    if changes and rules.on_schema_change == "fail":
        failures.append("; ".join(changes) + f". Fix the file, or {TO_WARN}")
    else:
        warnings += changes
    if rules.max_drift is not None:
        shifted = drift_messages(
            drift, version=version, threshold=rules.max_drift, limit="validation.max_drift"
        )
        if shifted:
            failures.append(
                "; ".join(shifted) + ". Check the file, or raise or remove validation.max_drift "
                "in the spec to train on it anyway"
            )
    else:
        warnings += drift_messages(
            drift, version=version, threshold=DEFAULT_THRESHOLD, limit="the warning level"
        )
    return warnings, failures


def production_baseline(
    store: Store, pipeline: str
) -> tuple[int, list[dict[str, Any]], dict[str, Any] | None] | None:
    """The production version, its signature's inputs and its reference distributions (None
    for a version registered before versions kept them); None without a production model."""
    pointer = get_alias(store, pipeline)
    if pointer is None:
        return None
    version = int(pointer["version"])
    record = store.get_json(version_key(pipeline, version))
    try:
        reference = dict(store.get_json(version_key(pipeline, version, "reference.json")))
    except NotFound:
        reference = None
    return version, list(record.get("signature", {}).get("inputs", [])), reference


def sample_table(path: Path, columns: list[str], *, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """A seeded sample of at most `rows` rows of a Parquet table's `columns`, read a row group
    at a time so memory holds one group and the sample, however large the table."""
    parquet = pq.ParquetFile(path, pre_buffer=False)
    total = parquet.metadata.num_rows
    if total <= rows:
        return parquet.read(columns=columns).to_pandas()
    positions = np.sort(np.random.default_rng(SEED).choice(total, size=rows, replace=False))
    kept, start = [], 0
    for batch in parquet.iter_batches(columns=columns, use_pandas_metadata=False):
        low, high = np.searchsorted(positions, [start, start + batch.num_rows])
        kept.append(batch.take(pa.array(positions[low:high] - start)))
        start += batch.num_rows
    return pa.Table.from_batches(kept).to_pandas()


def families(profile: Mapping[str, Any], *, empty: list[str]) -> dict[str, str]:
    """Each column's family from an ingest profile, leaving out the columns dropped as empty."""
    return {
        name: profile_family(kind, profile["columns"][name].get("format"))
        for name, kind in profile["schema"].items()
        if name not in empty
    }


def compare(
    *,
    version: int,
    inputs: Sequence[Mapping[str, Any]],
    reference: Mapping[str, Any] | None,
    columns: Mapping[str, str],
    frame: pd.DataFrame,
    target: str,
    rules: Validation,
    empty: list[str],
) -> dict[str, Any]:
    """Compare a table (its columns' families, and rows of it in `frame`) with a version's
    signature and reference, JSON-ready: the schema diff, drift per feature (the worst first,
    a column whose family changed left out), and the warnings and failures `rules` make of them."""
    diff = schema_diff(inputs, columns, target=target)
    changed = [c["column"] for c in diff["changed"]]
    drift: dict[str, float] = {}
    note = None
    if reference is None:
        note = f"v{version} was registered before versions kept their training distributions"
    else:
        drift = feature_drift(reference, frame.drop(columns=changed, errors="ignore"))
    warnings, failures = judge(diff, drift, version=version, rules=rules, empty=empty)
    return {
        "rules": rules.model_dump(),
        "threshold": rules.max_drift or DEFAULT_THRESHOLD,  # the index that warns or fails
        "version": version,
        "note": note,
        "schema": diff,
        "drift": dict(sorted(drift.items(), key=lambda item: -item[1])),
        "drift_rows": len(frame) if drift else None,
        "warnings": warnings,
        "failures": failures,
    }


def check_drop(
    store: Store,
    pipeline: str,
    *,
    data: Path,
    profile: Mapping[str, Any],
    target: str,
    rules: Validation,
    empty: list[str],
) -> dict[str, Any]:
    """Compare a new table (written at `data`, profiled as `profile`) with the production
    model's training data and judge it by `rules` (see compare)."""
    baseline = production_baseline(store, pipeline)
    if baseline is None:
        return {
            "rules": rules.model_dump(),
            "version": None,
            "note": "no production model yet: nothing to compare",
            "warnings": [],
            "failures": [],
        }
    version, inputs, reference = baseline
    columns = families(profile, empty=empty)
    wanted = [n for n in (reference or {}).get("features", {}) if n in columns and n != target]
    return compare(
        version=version,
        inputs=inputs,
        reference=reference,
        columns=columns,
        frame=sample_table(data, wanted) if wanted else pd.DataFrame(),
        target=target,
        rules=rules,
        empty=empty,
    )
