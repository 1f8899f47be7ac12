"""Names matched whole, and users' hidden characters shown as escapes."""

from __future__ import annotations

import pytest

from services.console import shown
from shared.errors import DataError
from shared.storage import check_name
from shared.text import has_hidden, visible


@pytest.mark.parametrize("name", ["p1\n", "p1\r\n", "p\u202e1", "a b", ".hidden", "%2e%2e", ""])
def test_names_are_matched_whole(name: str) -> None:
    with pytest.raises(DataError, match="not allowed"):
        check_name(name)


def test_hidden_characters_are_shown_as_escapes_and_the_rest_as_it_is() -> None:
    assert visible("invoice\u202ecsv.exe") == "invoice\\u202ecsv.exe"
    assert visible("p1\n") == "p1\\n" and visible("a\tb", keep="\t") == "a\tb"
    assert visible("clínica 東京 ✓") == "clínica 東京 ✓"
    assert has_hidden("\u2066x\u2069") and not has_hidden("plain text")


def test_the_console_keeps_line_breaks_so_a_refused_form_comes_back_as_written() -> None:
    """A browser sends a textarea's lines as CRLF; the form shown again after a refusal must
    hold the same text, or the next save reads `\\r` as part of the YAML."""
    assert shown("- estimator: ridge\r\n  search: {alpha: [1]}\r\n\t") == (
        "- estimator: ridge\r\n  search: {alpha: [1]}\r\n\t"
    )
    assert shown("evil\u202ecsv.exe") == "evil\\u202ecsv.exe"
