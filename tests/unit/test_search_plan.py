"""Samplers and the numbered trial plan that fans out across train workers."""

from __future__ import annotations

import tracemalloc

import pytest

from services.train.training import default_candidates, plan_trials, sample_params
from shared.errors import SpecError
from shared.spec import parse_spec

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
    # The candidates take turns, so that a search cut short by its budget has tried each.
    assert [t["estimator"] for t in plan] == ["random_forest", "logistic_regression"] * 2 + [
        "random_forest"
    ] * 4


def test_an_unknown_estimator_fails_before_any_trial_is_planned() -> None:
    with pytest.raises(SpecError, match="unknown classification estimator 'svm'"):
        plan_trials([("svm", {})], task="classification", trials_per_candidate=2, seed=0)


def test_auto_draws_from_a_huge_grid_without_listing_it() -> None:
    # Seven parameters of ten values each once took train to 1.3 GB: the grid was listed first.
    space = {f"p{i}": list(range(10)) for i in range(6)}
    tracemalloc.start()
    try:
        points = sample_params(space, trials=4, seed=0, sampler="auto")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(points) == 4 and all(set(p) == set(space) for p in points)
    assert peak < 2_000_000, f"sampling 4 points held {peak:,} bytes"


def test_a_grid_over_the_trial_limit_is_refused_naming_the_setting() -> None:
    space = {"a": list(range(40)), "b": list(range(30))}  # 1,200 trials, past the 1,000 bound
    with pytest.raises(SpecError, match="1,200 trials, more than the limit of 1,000") as caught:
        sample_params(space, trials=4, seed=0, sampler="grid")
    assert caught.value.field == "tuning.sampler"


def test_the_spec_refuses_a_grid_over_the_limit_naming_the_model() -> None:
    text = "tuning: {sampler: grid}\nmodels:\n  - estimator: ridge\n    search: {alpha: [1, 2]}\n"
    text += "  - estimator: random_forest\n"
    text += f"    search: {{max_depth: {list(range(40))}, min_samples_leaf: {list(range(30))}}}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.field == "models[1].search"


def test_a_candidate_on_its_default_space_starts_from_the_estimators_defaults() -> None:
    spaces = dict(default_candidates("classification"))
    plan = plan_trials(
        [(name, spaces[name]) for name in ("hist_gradient_boosting", "random_forest")]
        + [("logistic_regression", {"C": {"loguniform": [0.01, 0.1]}})],
        task="classification",
        trials_per_candidate=3,
        seed=0,
        defaults_first={"hist_gradient_boosting", "random_forest"},
    )
    first = {t["estimator"]: t["params"] for t in plan[:3]}
    assert first["hist_gradient_boosting"] == {} and first["random_forest"] == {}
    assert first["logistic_regression"] != {}  # a space of the user's own is kept to
    assert len(plan) == 9 and sum(t["params"] == {} for t in plan) == 2
    # A grid that is planned whole already holds what it holds: nothing is added.
    grid = plan_trials(
        [("random_forest", {"max_depth": [3, 6]})],
        task="classification",
        trials_per_candidate=4,
        seed=0,
        defaults_first={"random_forest"},
    )
    assert [t["params"] for t in grid] == [{"max_depth": 3}, {"max_depth": 6}]
