"""User text shown to people: control and direction-changing characters made visible.

File names, column names and error messages come from users' files. HTML escaping does not touch
a newline or U+202E (RIGHT-TO-LEFT OVERRIDE), which can make `evil\u202ecsv.exe` read as
`evilexe.vsc`; wherever such text is shown, it goes through `visible` first.
"""

from __future__ import annotations

import unicodedata

# Direction marks, embeddings, overrides and isolates (Unicode's bidirectional controls).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def hidden(char: str) -> bool:
    """Whether a character changes how text around it reads without being seen itself."""
    return char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp")


def has_hidden(text: str) -> bool:
    """Whether the text holds a control or direction-changing character."""
    return any(hidden(char) for char in text)


def visible(text: str, *, keep: str = "") -> str:
    """The text with every control or direction-changing character (but those in `keep`)
    written as its escape (`\\n`, `\\u202e`)."""
    if not has_hidden(text):
        return text
    return "".join(
        char if char in keep or not hidden(char) else char.encode("unicode_escape").decode()
        for char in text
    )
