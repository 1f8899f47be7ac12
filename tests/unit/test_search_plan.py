"""Samplers and the numbered trial plan that fans out across train workers."""

from __future__ import annotations

import pytest

from services.train.training import plan_trials, sample_params
from shared.errors import SpecError

SPACE = {"max_depth": [3, 6, None], "min_samples_leaf": [1, 5]}


def test_grid_lists_every_combination_even_beyond_the_trial_budget() -> None:
    points = sample_params(SPACE, trials=2, seed=0, sampler="grid")
    assert len(points) == 6 and {"max_depth": None, "min_samples_leaf": 5} in points


def test_random_draws_the_budget_reproducibly() -> None:
    space = {"C": {"loguniform": [0.001, 100]}, "penalty": ["l2"]}
    first = sample_params(space, trials=5, seed=7, sampler="random")
    assert first == sample_params(space, trials=5, seed=7, sampler="random")
    assert len(first) == 5 and all(0.001 <= p["C"] <= 100 for p in first)
    assert first != sample_params(space, trials=5, seed=8, sampler="random")


def test_grid_refuses_distributions_naming_the_setting() -> None:
    with pytest.raises(SpecError) as caught:
        sample_params({"C": {"uniform": [0, 1]}}, trials=3, seed=0, sampler="grid")
    assert caught.value.field == "tuning.sampler"


def test_the_plan_numbers_every_trial_of_every_candidate() -> None:
    plan = plan_trials(
        [("random_forest", SPACE), ("logistic_regression", {"C": [0.1, 1.0]})],
        task="classification",
        trials_per_candidate=10,
        seed=0,
    )
    assert [t["index"] for t in plan] == list(range(8))
    assert [t["estimator"] for t in plan] == ["random_forest"] * 6 + ["logistic_regression"] * 2


def test_an_unknown_estimator_fails_before_any_trial_is_planned() -> None:
    with pytest.raises(SpecError, match="unknown classification estimator 'svm'"):
        plan_trials([("svm", {})], task="classification", trials_per_candidate=2, seed=0)
