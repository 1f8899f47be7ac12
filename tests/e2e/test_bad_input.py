"""Bad files fail their run at once with a reason a person can act on, and nothing is lost."""

from __future__ import annotations

import gzip
import io
import os

import pandas as pd
import pytest

from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run

GOOD = cancer_frame().to_csv(index=False)
HEADER = GOOD.splitlines()[0]
LIMIT = 32 * 1024 * 1024  # CAUCE_MAX_UPLOAD_BYTES of the end-to-end stack
WIDE = (",".join(f"c{i}" for i in range(5000)) + "\n" + ("1," * 4999 + "1\n") * 30).encode()
CONSTANT = b"x,y\n" + b"".join(b"%d,yes\n" % i for i in range(60))
# A house table whose last column is a date: without a target, the date would be guessed.
DATED = b"sqft,bedrooms,price,list_date\n" + b"".join(
    b"%d,%d,%d,2021-%02d-%02d\n" % (900 + 7 * i, 1 + i % 5, 1500 + 9 * i, 1 + i % 12, 1 + i % 28)
    for i in range(60)
)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


# (pipeline, spec, file content, what the reason must say)
CASES = [
    ("empty", None, b"", "empty"),
    ("header-only", None, (HEADER + "\n").encode(), "no data rows"),
    ("few-rows", None, "\n".join(GOOD.splitlines()[:6]).encode(), "rows"),
    ("random-bytes", None, os.urandom(4096), "not"),
    ("json", None, b'[{"a": 1, "b": 2}, {"a": 3, "b": 4}]', "JSON"),
    ("ragged", None, (GOOD[:2000] + "\n1,2,3\n").encode(), "line"),
    ("dup-columns", None, b"a,a,b\n" + b"1,2,3\n" * 50, "duplicate"),
    ("no-target", "target: churned\n", GOOD.encode(), "churned"),
    (
        "constant-target",
        None,
        b"x,y\n" + b"".join(b"%d,1\n" % i for i in range(60)),
        "nothing to learn",
    ),
    (
        "missing-target",
        "target: y\n",
        b"x,y\n" + b"".join(b"%d,\n" % i for i in range(60)),
        "no values",
    ),
    ("bad-yaml", "target: [unclosed\n", GOOD.encode(), "YAML"),
    ("bad-estimator", "models:\n  - estimator: quantum_forest\n", GOOD.encode(), "quantum_forest"),
    ("bad-split", "split: {test: 2}\n", GOOD.encode(), "split.test"),
    (
        "bad-search",
        "models:\n  - estimator: logistic_regression\n    search: {Cc: [1, 2]}\n",
        GOOD.encode(),
        "models[0].search.Cc: logistic_regression has no parameter 'Cc'; known parameters: C,",
    ),
    ("guessed-date", None, DATED, "'list_date' was guessed as the target"),
    ("too-big", None, b"x" * (LIMIT + 1), "limit"),
    ("huge-field", None, b"a,b\n" + b"1," + b"z" * (20 * 1024 * 1024) + b"\n", "field"),
    ("5000-columns", None, WIDE, "5,000 columns"),
    ("single-class", "target: y\ntask: classification\n", CONSTANT, "single class"),
    ("wrong-types", "tuning: {trials: many}\n", GOOD.encode(), "tuning.trials"),
    ("text-target", "target: diagnosis\ntask: regression\n", GOOD.encode(), "diagnosis"),
]

# Inputs a user expects to work: each run succeeds and reads the data as meant.
FRAME = cancer_frame()
WORKS = {
    "gzip": gzip.compress(GOOD.encode()),
    "semicolon-decimal-comma": FRAME.to_csv(index=False, sep=";", decimal=",").encode(),
    "utf16": GOOD.encode("utf-16"),
    "latin1": FRAME.rename(columns={"clinic": "clínica"}).to_csv(index=False).encode("latin-1"),
    "bom": b"\xef\xbb\xbf" + GOOD.encode(),
    "formulas": FRAME.assign(clinic='=HYPERLINK("http://x")').to_csv(index=False).encode(),
    "all-missing-feature": FRAME.assign(empty=None).to_csv(index=False).encode(),
    "text-in-numbers": FRAME.assign(
        mean_area=FRAME.mean_area.astype(object).where(FRAME.index % 7 != 0, "n/a")
    )
    .to_csv(index=False)
    .encode(),
    "parquet": _parquet(FRAME),
}


@pytest.fixture(scope="module")
def failed_runs(stack: Stack) -> dict[str, dict]:
    """Drop every bad file at once, then collect each run once it has ended."""
    for pipeline, spec, content, _ in CASES:
        if spec is not None:
            stack.store.put_bytes(f"pipelines/{pipeline}.yaml", spec.encode())
        stack.store.put_bytes(f"incoming/{pipeline}/data.csv", content)
    return {
        pipeline: wait_run(stack.store, run_for(stack.store, f"incoming/{pipeline}/data.csv"))
        for pipeline, *_ in CASES
    }


@pytest.mark.parametrize(("pipeline", "reason"), [(c[0], c[3]) for c in CASES])
def test_bad_file_fails_with_a_reason_and_is_kept(
    stack: Stack, failed_runs: dict[str, dict], pipeline: str, reason: str
) -> None:
    run = failed_runs[pipeline]
    assert run["state"] == "failed"
    assert run["error"].startswith("ingest: ")
    assert reason.lower() in run["error"].lower(), run["error"]
    assert stack.store.exists(f"incoming/{pipeline}/data.csv")
    kept = stack.store.get_json(f"quarantine/{pipeline}/{run['run_id']}/reason.json")
    assert kept["error"] in run["error"]
    assert stack.store.exists(f"quarantine/{pipeline}/{run['run_id']}/data.csv")
    shown = stack.cli("run", run["run_id"], check=False)
    assert "failed" in shown.stdout and reason.lower() in shown.stdout.lower()


def test_a_guessed_target_that_looks_wrong_says_how_to_set_it(
    failed_runs: dict[str, dict],
) -> None:
    assert failed_runs["guessed-date"]["error"].endswith(
        "set the target with --target or in the spec"
    )


def test_submit_wait_shows_the_guessed_target_and_task(stack: Stack, tmp_path) -> None:
    data = tmp_path / "cancer.csv"
    data.write_text(GOOD)
    result = stack.cli("submit", str(data), "--pipeline", "guessed", "--wait", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "target diagnosis (guessed), task classification (guessed)" in result.stdout


def test_a_failed_run_exits_non_zero_from_submit_wait(stack: Stack, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"x,y\n1,1\n2,1\n")
    result = stack.cli("submit", str(bad), "--pipeline", "tiny", "--wait", check=False)
    assert result.returncode == 1
    assert "failed" in result.stdout and "rows" in result.stdout


@pytest.fixture(scope="module")
def working_runs(stack: Stack) -> dict[str, dict]:
    """Drop every file a user expects to work, then collect each run once it has ended."""
    for name, content in WORKS.items():
        stack.store.put_bytes(f"pipelines/works-{name}.yaml", b"target: diagnosis\n")
        suffix = "parquet" if name == "parquet" else "csv"
        stack.store.put_bytes(f"incoming/works-{name}/data.{suffix}", content)
    return {
        name: wait_run(
            stack.store,
            run_for(
                stack.store,
                f"incoming/works-{name}/data.{'parquet' if name == 'parquet' else 'csv'}",
            ),
        )
        for name in WORKS
    }


@pytest.mark.parametrize("name", list(WORKS))
def test_files_a_user_expects_to_work_do(
    stack: Stack, working_runs: dict[str, dict], name: str
) -> None:
    run = working_runs[name]
    assert run["state"] == "succeeded", run["error"]
    signature = stack.store.get_json(f"runs/{run['run_id']}/preprocess/signature.json")
    columns = {column["name"]: column["type"] for column in signature}
    expected = {"mean_radius": "double", "clinic": "string"}
    if name == "latin1":
        expected = {"mean_radius": "double", "clínica": "string"}
    if name == "all-missing-feature":
        assert "empty" not in columns  # dropped, nothing to learn from
    if name == "text-in-numbers":
        expected = {"mean_area": "double"}  # "n/a" is a gap, the column stays numeric
    assert {k: columns.get(k) for k in expected} == expected
    if name == "formulas":
        profile = stack.store.get_json(f"runs/{run['run_id']}/ingest/profile.json")
        top = profile["columns"]["clinic"]["top"]
        assert top[0]["value"] == '=HYPERLINK("http://x")'  # kept as text, never evaluated
