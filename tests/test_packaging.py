"""`pip install .` into an existing Airflow brings what Baton imports: every third-party module that
include/baton imports comes from a dependency declared in pyproject.toml, or from one of theirs."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import sys
import tomllib

from packaging.requirements import Requirement

from tests.conftest import ROOT

PACKAGE = ROOT / "include" / "baton"


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower().replace("_", "-")


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions these need, recursively, with the extras each asks for (and no other)."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    todo = [(r.name.lower().replace("_", "-"), extra) for r in requirements for extra in ["", *r.extras]]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        names.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            needed = Requirement(text)
            if needed.marker is None or needed.marker.evaluate({"extra": extra}):
                todo += [(_name(text), e) for e in ["", *needed.extras]]
    return names


def _imported_top_levels() -> dict[str, str]:
    """Top-level module -> a file that imports it, for every absolute import in include/baton."""
    found: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_baton_comes_from_a_declared_dependency():
    dists_of = metadata.packages_distributions()
    installed = _closure(_declared())
    missing = {}
    for module, where in sorted(_imported_top_levels().items()):
        if module in sys.stdlib_module_names or module == "baton":
            continue
        dists = {_name(d) for d in dists_of.get(module, [])}
        assert dists, f"{module} (imported by {where}) is not installed"
        if not dists & installed:
            missing[module] = (sorted(dists), where)
    assert missing == {}, "declare these in pyproject.toml's dependencies"


def test_the_check_sees_a_module_no_declared_dependency_brings():
    assert "ruff" not in _closure(_declared())  # a development tool of the lock, not of Baton
    assert {"numpy", "pydantic-core", "httpcore"} <= _closure(_declared())  # brought by what is declared
