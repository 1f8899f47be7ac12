"""Successive halving: rungs of rows, the trials that climb them, and the size-aware settings."""

from __future__ import annotations

from services.train.halving import climb, promotable, rungs, slots
from services.train.training import best_trial, make_estimator


def test_rungs_triple_their_rows_up_to_every_training_row() -> None:
    assert rungs(100_000) == [None]
    assert rungs(210_000) == [70_000, None]
    assert rungs(600_000) == [66_666, 200_000, None]
    assert rungs(6_000_000) == [666_666, 2_000_000, None]  # at most three rungs
    assert slots(4, 3) == 4 + 2 + 1 and slots(4, 1) == 4


def _trial(index: int, score: float | None, rung: int = 0, state: str = "succeeded") -> dict:
    return {
        "index": index,
        "estimator": "ridge",
        "params": {"alpha": index},
        "rung": rung,
        "state": state,
        "score": score,
    }


def test_the_best_third_of_a_rung_climbs_highest_rung_first_each_trial_once() -> None:
    seen = [
        *(_trial(i, s) for i, s in enumerate([0.5, 0.9, 0.7, 0.6, 0.8, 0.4])),
        _trial(6, None, state="failed"),
        _trial(7, 0.95, rung=0, state="running"),  # not finished: not ranked
        _trial(8, 0.85, rung=1),
        _trial(9, 0.75, rung=1),
        _trial(10, 0.65, rung=1),
    ]
    steps = [10_000, 30_000, None]
    order = [(rung, t["index"]) for rung, t in promotable(seen, steps, greater_is_better=True)]
    assert order == [(2, 8), (1, 1), (1, 4)]
    assert [
        i for _, i in [(r, t["index"]) for r, t in promotable(seen, steps, greater_is_better=False)]
    ] == [10, 5, 0]

    claimed: set[int] = {8}  # another trial took trial 8 on already

    def claim(index: int) -> bool:
        if index in claimed:
            return False
        claimed.add(index)
        return True

    first = climb(seen, steps, greater_is_better=True, claim=claim)
    assert first == {
        "estimator": "ridge",
        "params": {"alpha": 1},
        "rung": 1,
        "rows": 30_000,
        "promoted_from": 1,
    }
    assert climb(seen, steps, greater_is_better=True, claim=claim)["promoted_from"] == 4
    assert climb(seen, steps, greater_is_better=True, claim=claim) is None  # a new one starts


def test_selection_takes_the_best_of_the_highest_rung_reached() -> None:
    trials = [_trial(0, 0.99), _trial(1, 0.7, rung=1), _trial(2, 0.8, rung=1), _trial(3, 0.9)]
    assert best_trial(trials, "accuracy")["index"] == 2
    assert best_trial([_trial(0, 0.6), _trial(1, 0.7)], "accuracy")["index"] == 1  # no halving


def test_a_forest_on_many_rows_bootstraps_fewer_and_boosting_stops_early() -> None:
    forest = make_estimator("regression", "random_forest", {}, rows=1_000_000)
    assert forest.get_params()["max_samples"] == 100_000
    assert make_estimator("regression", "random_forest", {}, rows=50_000).max_samples is None
    boosting = make_estimator("classification", "hist_gradient_boosting", {"max_iter": 50}, 20_000)
    assert boosting.early_stopping is True and boosting.max_iter == 50  # the search's own wins
    assert make_estimator("classification", "hist_gradient_boosting", {}, 500).max_iter == 100
