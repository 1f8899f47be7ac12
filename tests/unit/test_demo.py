"""The end of `make demo`: how to reach `cauce` (it is not on PATH) and where the data is."""

from __future__ import annotations

from pathlib import Path

from examples.demo import CAUCE, closing_lines


def test_the_demo_ends_naming_the_cli_and_the_real_home(tmp_path: Path) -> None:
    lines = closing_lines(tmp_path / "my-home")
    assert any(CAUCE in line and "activate" in line for line in lines)
    assert f"CAUCE_HOME={(tmp_path / 'my-home').resolve()}" in lines[-1]
