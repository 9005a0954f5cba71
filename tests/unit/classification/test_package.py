"""The shape of ``auditspan.classification``: one module a step, imported in one direction.

Read from the source files (``ast``), not by importing them: what is checked is
how the modules are written -- a docstring each, no import hidden in a function
to dodge a cycle (PyYAML, an optional dependency, is the one lazy import), and
an import graph without cycles, with the shared file reader at the bottom.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import auditspan

SRC = Path(auditspan.__file__).parent
PACKAGE = SRC / "classification"
MODULES = sorted(PACKAGE.glob("*.py"))
#: The modules this package, the behavioural rules and the shared reader are made of.
CHECKED = [*MODULES, SRC / "_config_files.py", SRC / "rules.py"]
#: Imports that may stay inside a function: optional dependencies, loaded only when needed.
LAZY_OPTIONAL = {"yaml"}


def _name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """The ``auditspan`` modules a file imports at module level (relative imports resolved)."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.startswith("auditspan"):
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("auditspan"))
    return found


def test_the_package_has_a_module_for_each_step() -> None:
    assert [p.name for p in MODULES] == [
        "__init__.py",
        "_arguments.py",
        "_classifier.py",
        "_derivers.py",
        "_heuristics.py",
        "_rules.py",
        "_sql.py",
        "_urls.py",
        "_words.py",
    ]


@pytest.mark.parametrize("path", CHECKED, ids=[_name(p) for p in CHECKED])
def test_each_module_says_what_it_does(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring is not None
    assert len(docstring.split()) >= 20, docstring


@pytest.mark.parametrize("path", CHECKED, ids=[_name(p) for p in CHECKED])
def test_no_import_hides_in_a_function(path: Path) -> None:
    hidden = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    hidden += [a.name for a in inner.names if a.name not in LAZY_OPTIONAL]
                elif isinstance(inner, ast.ImportFrom) and (inner.level or inner.module not in LAZY_OPTIONAL):
                    hidden.append("." * inner.level + (inner.module or ""))
    assert hidden == []


def test_the_modules_import_each_other_in_one_direction() -> None:
    graph = {_name(p): _imported(p) for p in CHECKED}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message
        pytest.fail(f"import cycle: {exc.args[1]}")
    assert order.index("auditspan._config_files") < order.index("auditspan.classification._rules")
    assert order.index("auditspan._config_files") < order.index("auditspan.rules")
    assert order.index("auditspan.classification._classifier") < order.index("auditspan.classification")


def test_the_shared_reader_is_below_both_rule_kinds() -> None:
    assert _imported(SRC / "_config_files.py") == set()
    assert "auditspan._config_files" in _imported(SRC / "rules.py")
    assert not any(m.startswith("auditspan.classification") for m in _imported(SRC / "rules.py"))


def test_the_word_tables_import_nothing_of_the_classifier() -> None:
    """The vocabulary is a leaf: extending it cannot change how the steps are wired."""
    assert _imported(PACKAGE / "_words.py") == set()
    assert _imported(PACKAGE / "_sql.py") == {"auditspan.classification._words"}
    assert _imported(PACKAGE / "_urls.py") == {"auditspan.classification._words"}
