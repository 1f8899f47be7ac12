"""shared/ imports one way: no module under it reaches itself through its imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "shared"


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module under the package, by dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The known modules that `name` imports anywhere in its file, functions included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # from shared import columns
                    yield f"{base}.{alias.name}"
                elif base in known:  # from shared.columns import Column
                    yield base


def graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package and the modules of it that it imports."""
    known = modules(root, package)
    return {name: set(imported(name, path, known)) - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle found by a depth-first walk, each as the path that closes it."""
    found: dict[tuple[str, ...], list[str]] = {}
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            loop = path[path.index(node) :]
            start = loop.index(min(loop))  # one spelling per cycle, whatever node it was met at
            key = tuple(loop[start:] + loop[:start])
            found.setdefault(key, [*key, key[0]])
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            walk(nxt, [*path, node])
        done.add(node)

    for node in sorted(edges):
        walk(node, [])
    return list(found.values())


def test_the_cycle_finder_names_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_follows_every_kind_of_import(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "import pkg.b\n",
        "b.py": "def late() -> None:\n    from pkg.sub import c\n",
        "sub/__init__.py": "from . import c\n",
        "sub/c.py": "from ..a import name\n",
        "d.py": "from pkg import a, json\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    edges = graph(tmp_path, "pkg")
    assert edges == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.d": {"pkg", "pkg.a"},  # json: a name in pkg/__init__.py
        "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.a"},
    }
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_shared_has_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles in shared/: " + "; ".join(" -> ".join(c) for c in found)
