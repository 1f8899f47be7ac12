"""The pipeline spec: each bad field is named; defaults come from the data."""

from __future__ import annotations

import pytest

from services.train.training import CANDIDATES
from services.train.training import ESTIMATORS as TRAINABLE
from shared.errors import SpecError
from shared.spec import DEFAULT_ESTIMATORS, ESTIMATORS, PARAMETERS, parse_spec, resolve_spec


def test_the_spec_offers_exactly_the_estimators_training_implements() -> None:
    assert ESTIMATORS == TRAINABLE


def test_no_spec_means_every_default() -> None:
    spec = resolve_spec(parse_spec(None), target="y", task="regression")
    assert (spec.target, spec.task, spec.metric) == ("y", "regression", "rmse")
    assert [m.estimator for m in spec.models or []] == list(DEFAULT_ESTIMATORS["regression"])
    assert DEFAULT_ESTIMATORS["regression"][-1] == "lightgbm"  # since bench-quality said so
    assert (spec.split.test, spec.split.validation, spec.split.seed) == (0.2, 0.2, 42)


def test_off_written_bare_turns_halving_and_the_blend_off() -> None:
    # YAML 1.1 reads a bare off as false; the README writes `halving: off`.
    tuning = parse_spec("tuning: {halving: off, ensemble: off}\n").tuning
    assert (tuning.halving, tuning.ensemble) == ("off", "off")
    assert parse_spec("tuning: {ensemble: on}\n").tuning.ensemble == "auto"
    assert parse_spec(None).tuning.ensemble is None  # unset: the workers' CAUCE_ENSEMBLE


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("target: [unclosed\n", "spec", "not valid YAML"),
        ("- a list\n", "spec", "mapping"),
        ("split: {test: 2}\n", "split.test", "less than 0.9"),
        ("split: {test: 0.5, validation: 0.45}\n", "split", "10% of rows"),
        ("tuning: {trials: many}\n", "tuning.trials", "whole number of trials"),
        ("tuning: {ensemble: always}\n", "tuning.ensemble", "'auto' or 'off'"),
        ("gate: {min_improvement: -1}\n", "gate.min_improvement", "greater than or equal"),
        ("task: clustering\n", "task", "classification"),
        ("modles: []\n", "modles", "Extra inputs"),
        ("models:\n  - search: {}\n", "models[0].estimator", "Field required"),
    ],
)
def test_each_bad_field_is_named(text: str, field: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.field == field
    assert says in str(caught.value)


def test_an_estimator_or_metric_that_does_not_fit_the_task_is_named() -> None:
    spec = parse_spec("models:\n  - estimator: ridge\n")
    with pytest.raises(SpecError, match=r"models\[0\]\.estimator: unknown classification"):
        resolve_spec(spec, target="y", task="classification")
    with pytest.raises(SpecError, match="metric 'rmse' does not fit a classification task"):
        resolve_spec(parse_spec("metric: rmse\n"), target="y", task="classification")


def test_the_spec_knows_every_parameter_each_estimator_has() -> None:
    for task, candidates in CANDIDATES.items():
        for name, candidate in candidates.items():
            known = candidate.factory(**candidate.fixed).get_params(deep=False)
            assert PARAMETERS[task][name] == tuple(sorted(known)), (task, name)


def test_a_typo_in_a_search_parameter_is_named_when_the_spec_is_resolved() -> None:
    spec = parse_spec("models: [{estimator: ridge, search: {alpah: [1, 2]}}]\n")
    with pytest.raises(SpecError) as caught:
        resolve_spec(spec, target="price", task="regression")
    assert caught.value.field == "models[0].search.alpah"
    assert str(caught.value).startswith(
        "models[0].search.alpah: ridge has no parameter 'alpah'; known parameters: alpha, "
    )


def test_a_spec_that_names_its_task_has_its_search_checked_when_parsed() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(
            "task: classification\nmodels:\n  - estimator: random_forest\n"
            "    search: {max_dept: [3]}\n"
        )
    assert caught.value.field == "models[0].search.max_dept"
    assert "random_forest has no parameter 'max_dept'" in str(caught.value)
    good = parse_spec("task: regression\nmodels: [{estimator: ridge, search: {alpha: [1]}}]\n")
    assert good.models is not None and good.models[0].search == {"alpha": [1]}
