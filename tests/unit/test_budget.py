"""The search's time budget: its default, stopping a trial at it, and how it is shown."""

from __future__ import annotations

import time

import pytest
from sklearn.datasets import load_diabetes

from services.train.budget import TrialStopped, default_budget, time_limit
from services.train.training import run_trial
from shared.client.render import search_line


def test_the_default_budget_grows_with_the_training_rows_up_to_an_hour() -> None:
    assert default_budget(0) == 60
    assert default_budget(12_000) == pytest.approx(67.2)
    assert default_budget(600_000) == 420  # the 1M-row table's training split: 7 minutes
    assert default_budget(100_000_000) == 3600


def test_a_time_limit_interrupts_python_work_and_is_lifted_after() -> None:
    started = time.perf_counter()
    with pytest.raises(TrialStopped, match="after 0 s"), time_limit(0.2):
        while True:
            sum(range(1000))
    assert time.perf_counter() - started < 2
    with time_limit(0.2):
        pass
    time.sleep(0.4)  # no alarm goes off once the block is left


def test_a_trial_past_its_limit_is_recorded_as_stopped_with_its_seconds() -> None:
    X, y = load_diabetes(return_X_y=True)
    result = run_trial(
        task="regression",
        estimator="random_forest",
        params={"n_estimators": 20_000},
        X_train=X[:300],
        y_train=y[:300],
        X_val=X[300:],
        y_val=y[300:],
        metric="rmse",
        classes=None,
        limit=0.5,
    )
    assert result["state"] == "stopped" and result["score"] is None
    assert "time limit" in result["error"]
    assert 0.4 < result["seconds"] < 3


def test_a_search_is_shown_with_its_budget_while_it_runs_and_once_it_ended() -> None:
    running = {
        "trials_done": 3,
        "trials_planned": 12,
        "budget_seconds": 60.0,
        "used_seconds": 21.4,
        "left_seconds": 38.6,
    }
    assert search_line(running) == "3 of 12 trials done, 21s of 60s budget used, about 39s left"
    ended = {"trials_done": 12, "trials_planned": 12, "budget_seconds": 60.0, "skipped": 4}
    assert search_line(ended) == "12 trials, 60s budget (4 skipped at the budget)"
