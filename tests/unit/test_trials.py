"""Which tuning trial is due next: the rule train follows and recovery checks."""

from __future__ import annotations

from shared.trials import TrialTimes, due_trials, last_sign, next_trial


def test_the_plan_starts_the_first_trials_and_each_trial_sends_one_later() -> None:
    assert due_trials((), parallelism=3, count=8) == [0, 1, 2]
    assert due_trials((), parallelism=3, count=2) == [0, 1]
    assert next_trial(1, parallelism=3, count=8) == 4
    assert next_trial(5, parallelism=3, count=8) is None


def test_a_trial_is_due_once_the_trial_that_sends_it_has_a_result() -> None:
    assert due_trials({0, 2}, parallelism=3, count=8) == [1, 3, 5]
    assert due_trials(set(range(8)), parallelism=3, count=8) == []


def test_a_due_trial_last_showed_life_at_its_heartbeat_else_its_sender_else_the_plan() -> None:
    times = TrialTimes(results={0: 100.0}, beats={4: 150.0})
    assert last_sign(times, 4, parallelism=3, planned=10.0) == 150.0
    assert last_sign(times, 3, parallelism=3, planned=10.0) == 100.0
    assert last_sign(times, 1, parallelism=3, planned=10.0) == 10.0
