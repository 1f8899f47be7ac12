"""Alerts through the whole local stack: a failed run and a promotion reach a webhook receiver,
signed; a receiver that hangs delays no run, and `cauce alerts test` says it did not answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alert_receiver import SECRET, Receiver, receiving
from tests.datasets import cancer_frame
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.helpers import run_for, wait_run

SPEC = "target: diagnosis\nmodels:\n  - estimator: logistic_regression\ntuning: {trials: 1}\n"
DUPLICATE_COLUMNS = b"a,a,b\n" + b"1,2,3\n" * 50


@pytest.fixture(scope="module")
def alerted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Receiver]]:
    """A stack of its own whose alerts go to a receiver of the test's."""
    with (
        receiving() as receiver,
        running_stack(
            tmp_path_factory.mktemp("alerts-home"),
            CAUCE_ALERT_URL=receiver.url,
            CAUCE_ALERT_SECRET=SECRET,
            CAUCE_ALERT_TIMEOUT_SECONDS="1",
            CAUCE_ALERT_TRIES="2",
        ) as stack,
    ):
        yield stack, receiver


def test_a_failed_run_and_a_promotion_arrive_signed(
    alerted: tuple[Stack, Receiver], tmp_path: Path
) -> None:
    stack, receiver = alerted
    stack.store.put_bytes("incoming/broken/data.csv", DUPLICATE_COLUMNS)
    failed = wait_run(stack.store, run_for(stack.store, "incoming/broken/data.csv"))
    assert failed["state"] == "failed" and "duplicate" in failed["error"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    stack.cli("spec", "set", "cancer", str(spec))
    data = tmp_path / "cancer.csv"
    cancer_frame().to_csv(data, index=False)
    run = stack.cli_json("submit", str(data), "--pipeline", "cancer", "--wait")
    assert run["state"] == "succeeded", run["error"]

    fail, promoted = receiver.wait_for(2)
    assert fail.signed and promoted.signed
    assert fail.headers["X-Cauce-Event"] == "run.failed"
    assert (fail.body["run_id"], fail.body["pipeline"]) == (failed["run_id"], "broken")
    assert fail.body["details"]["stage"] == "ingest" and "duplicate" in fail.body["message"]
    assert promoted.headers["X-Cauce-Event"] == "model.promoted"
    assert (promoted.body["pipeline"], promoted.body["version"]) == ("cancer", 1)
    assert promoted.body["run_id"] == run["run_id"]


def test_a_hanging_receiver_delays_no_run(alerted: tuple[Stack, Receiver]) -> None:
    stack, receiver = alerted
    receiver.sleep = 10.0  # far past CAUCE_ALERT_TIMEOUT_SECONDS
    before = len(receiver.got)
    stack.store.put_bytes("incoming/broken/again.csv", DUPLICATE_COLUMNS)
    failed = wait_run(stack.store, run_for(stack.store, "incoming/broken/again.csv"), timeout=60)
    assert failed["state"] == "failed" and "duplicate" in failed["error"]
    (tried,) = receiver.wait_for(before + 1)[before:]
    assert tried.body["run_id"] == failed["run_id"]  # its alert was tried, and is still hanging
    result = stack.cli("alerts", "test", check=False)
    assert result.returncode == 1
    assert "did not answer" in result.stderr and "timed out" in result.stderr
