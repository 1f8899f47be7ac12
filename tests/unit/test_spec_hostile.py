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
    lines = ["models:", "  - estimator: ridge", "    search:", "      a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
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
