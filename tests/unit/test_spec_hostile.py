"""Specs built to hurt: alias bombs and oversized specs are refused wherever a spec is parsed
(ingest and `cauce spec set` through parse_spec, the console's API and form through specform),
and values the run could not carry are refused naming the field."""

from __future__ import annotations

import pytest

from services.console import specform
from shared.errors import SpecError
from shared.spec import MAX_SPEC_BYTES, MAX_SPEC_VALUES, parse_spec


def alias_bomb(depth: int = 7, width: int = 9) -> str:
    """A few hundred bytes of otherwise valid spec whose aliases expand to width**depth values
    (as the 445-byte probe that became a 241 MB spec.json)."""
    lines = [
        "models:",
        "  - estimator: ridge",
        "    search:",
        "      a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]",
    ]
    for level in range(1, depth):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"      a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    text = alias_bomb()
    assert len(text) < 600
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.field == "spec"
    assert f"more than {MAX_SPEC_VALUES:,} values" in str(caught.value)


def test_the_console_refuses_an_alias_bomb_in_the_api_and_the_form() -> None:
    with pytest.raises(SpecError, match="aliases"):
        specform.parse_mapping(alias_bomb())
    bomb_list = "- &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
        f"- &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(6)
    )
    with pytest.raises(SpecError, match="aliases"):
        specform.apply_form({}, {"models": bomb_list})


def test_a_few_aliases_still_work() -> None:
    spec = parse_spec(
        "models:\n  - estimator: ridge\n    search: {alpha: &space [0.1, 1.0]}\n"
        "  - estimator: random_forest\n    search: {max_depth: *space}\n"
    )
    assert spec.models is not None and spec.models[1].search == {"max_depth": [0.1, 1.0]}


def test_a_spec_over_the_size_limit_is_refused_naming_it() -> None:
    text = "target: y\n" + "# padding\n" * (MAX_SPEC_BYTES // 10 + 1)
    for parse in (parse_spec, specform.parse_mapping):
        with pytest.raises(SpecError) as caught:
            parse(text)
        assert caught.value.field == "spec"
        assert f"at most {MAX_SPEC_BYTES:,} bytes" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("gate: {min_improvement: .inf}\n", "gate.min_improvement", "finite number"),
        ("split: {test: .nan}\n", "split.test", "finite number"),
        (
            "models:\n  - estimator: ridge\n    search: {alpha: [1.0, .inf]}\n",
            "models[0].search",
            "alpha: inf is not a finite number",
        ),
        (
            "models:\n  - estimator: ridge\n    search: {alpha: {uniform: [0, .inf]}}\n",
            "models[0].search",
            "alpha: inf is not a finite number",
        ),
        ("split: {seed: -1}\n", "split.seed", "greater than or equal to 0"),
        (
            "split: {seed: 12345678901234567890123}\n",
            "split.seed",
            "less than or equal to 4294967295",
        ),
    ],
    ids=["inf_gate", "nan_split", "inf_choice", "inf_range", "negative_seed", "huge_seed"],
)
def test_values_a_run_cannot_carry_are_refused_naming_the_field(
    text: str, field: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.field == field
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("value", "target"),
    [("on", "on"), ("yes", "yes"), ("1", "1"), ("007", "007"), ("1.5", "1.5"), ("'on'", "on")],
)
def test_target_is_the_column_name_as_written(value: str, target: str) -> None:
    # YAML 1.1 reads `on` as true and `1` as a number: "Input should be a valid string".
    assert parse_spec(f"target: {value}\n").target == target
    assert specform.parse_mapping(f"target: {value}\ncache: yes\n") == {
        "target": target,
        "cache": True,
    }


def test_a_null_target_is_still_the_default() -> None:
    assert parse_spec("target: null\n").target is None
    assert parse_spec("target:\n").target is None
