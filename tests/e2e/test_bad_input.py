"""Bad files fail their run at once with a reason a person can act on, and nothing is lost."""

from __future__ import annotations

import gzip
import os

import pytest

from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run

GOOD = cancer_frame().to_csv(index=False)
HEADER = GOOD.splitlines()[0]

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
    ("too-big", None, gzip.compress(b"0") + b"x" * (3 * 1024 * 1024), "limit"),
]


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


def test_a_failed_run_exits_non_zero_from_submit_wait(stack: Stack, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"x,y\n1,1\n2,1\n")
    result = stack.cli("submit", str(bad), "--pipeline", "tiny", "--wait", check=False)
    assert result.returncode == 1
    assert "failed" in result.stdout and "rows" in result.stdout
