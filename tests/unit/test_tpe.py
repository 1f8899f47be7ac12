"""The TPE sampler: points asked of a study rebuilt from the trial results in the bucket."""

from __future__ import annotations

import numpy as np

from services.train.tpe import ask, startup_trials
from services.train.training import plan_trials

SPACE = {
    "C": {"loguniform": [0.01, 100.0]},
    "max_depth": [None, 6, 12],
    "leaves": {"int": [8, 48]},
    "fraction": {"uniform": [0.5, 1.0]},
}


def _ask(history: list[dict], seed: int = 0) -> dict:
    return ask(SPACE, history, greater_is_better=True, seed=seed, startup=3)


def test_a_point_lies_in_the_space_and_the_same_history_asks_the_same_point() -> None:
    history = [
        {
            "params": {"C": 1.0, "max_depth": 6, "leaves": 10, "fraction": 0.7},
            "state": "succeeded",
            "score": 0.8,
        },
        {"params": {"C": 5.0, "max_depth": None, "leaves": 40, "fraction": 0.9}, "state": "failed"},
        {"params": {}, "state": "succeeded", "score": 0.9},  # the defaults: outside the space
        {
            "params": {"C": 1e6, "max_depth": 6, "leaves": 10, "fraction": 0.7},
            "state": "succeeded",
            "score": 0.99,
        },  # a point the space no longer holds
        {"params": None, "state": "skipped"},
    ]
    point = _ask(history)
    assert set(point) == set(SPACE)
    assert 0.01 <= point["C"] <= 100.0 and point["max_depth"] in (None, 6, 12)
    assert isinstance(point["leaves"], int) and 8 <= point["leaves"] <= 48
    assert 0.5 <= point["fraction"] <= 1.0
    assert _ask(history) == point
    assert _ask(history, seed=1) != point


def test_past_the_startup_trials_the_points_close_in_on_the_best_region() -> None:
    space = {"x": {"uniform": [0.0, 1.0]}}

    def search(sampler_history: bool) -> list[float]:
        history: list[dict] = []
        asked = []
        for seed in range(30):
            if sampler_history:
                x = ask(space, history, greater_is_better=False, seed=seed, startup=5)["x"]
            else:
                x = float(np.random.default_rng(seed).uniform())
            history.append({"params": {"x": x}, "state": "succeeded", "score": (x - 0.8) ** 2})
            asked.append(x)
        return asked

    tpe_late = np.abs(np.array(search(True)[10:]) - 0.8)
    random_late = np.abs(np.array(search(False)[10:]) - 0.8)
    assert np.median(tpe_late) < 0.15 < np.median(random_late)


def test_running_trials_are_not_asked_for_again() -> None:
    space = {"depth": [1, 2, 3]}
    history = [
        {"params": {"depth": 1}, "state": "succeeded", "score": 0.9},
        {"params": {"depth": 2}, "state": "succeeded", "score": 0.1},
        {"params": {"depth": 3}, "state": "succeeded", "score": 0.2},
        {"params": {"depth": 1}, "state": "succeeded", "score": 0.91},
    ]
    alone = [
        ask(space, history, greater_is_better=True, seed=s, startup=2)["depth"] for s in range(10)
    ]
    running = [*history, *[{"params": {"depth": 1}, "state": "running"}] * 6]
    lied = [
        ask(space, running, greater_is_better=True, seed=s, startup=2)["depth"] for s in range(10)
    ]
    # The best point so far is asked for again, until six workers are already fitting it.
    assert alone.count(1) > lied.count(1)


def test_a_tpe_plan_leaves_each_point_to_its_trial_and_starts_from_the_defaults() -> None:
    plan = plan_trials(
        [("random_forest", {"max_depth": [None, 6]}), ("hist_gradient_boosting", SPACE_HGB)],
        task="classification",
        trials_per_candidate=3,
        seed=0,
        sampler="tpe",
        defaults_first={"hist_gradient_boosting"},
    )
    assert [(t["estimator"], t["params"]) for t in plan] == [
        ("random_forest", None),
        ("hist_gradient_boosting", {}),
        ("random_forest", None),
        ("hist_gradient_boosting", None),
        ("random_forest", None),
        ("hist_gradient_boosting", None),
    ]
    assert startup_trials(4) == 3 and startup_trials(50) == 10


SPACE_HGB = {"learning_rate": {"loguniform": [0.03, 0.3]}}
