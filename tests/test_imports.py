"""Imports of Baton's own modules sit at the top of a module, where the import contracts and a reader see
them. One inside a function is allowed only with its reason on the line (`# deferred: ...`): keeping
Airflow or a heavy library out of DAG parsing or out of a light command is a reason; hiding an import cycle
is not, and no cycle runs between any two modules of the package, through function-level imports too."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "baton"
MOST_DEFERRED = 40  # the package's budget of function-level imports of its own modules
REASON = "# deferred: "


def _own_function_level_imports(root: Path) -> list[tuple[str, int, str]]:
    """(file, line, source line) of each import of a baton module inside a function body."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    own = inner.level > 0 or (inner.module or "").split(".")[0] == "baton"
                elif isinstance(inner, ast.Import):
                    own = any(alias.name.split(".")[0] == "baton" for alias in inner.names)
                else:
                    continue
                if own:
                    rel = str(path.relative_to(root.parent))
                    found.append((rel, inner.lineno, lines[inner.lineno - 1].strip()))
    return sorted(set(found))


def _import_module_of_own(root: Path) -> list[str]:
    """importlib.import_module("baton....") calls with a literal name: an import the linter cannot see."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("baton")
            ):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_each_function_level_import_of_baton_says_why():
    found = _own_function_level_imports(PACKAGE)
    unexplained = [f"{file}:{line}: {src}" for file, line, src in found if REASON not in src]
    assert not unexplained, "imports of baton inside functions without '# deferred: <reason>':\n" + "\n".join(
        unexplained
    )
    assert len(found) <= MOST_DEFERRED, (
        f"{len(found)} function-level imports of baton: at most {MOST_DEFERRED}"
    )


def test_no_literal_import_module_of_baton():
    assert _import_module_of_own(PACKAGE) == []


def test_the_counter_sees_a_planted_import(tmp_path):
    module = tmp_path / "baton" / "planted.py"
    module.parent.mkdir()
    module.write_text(
        "import importlib\n\n\ndef f():\n    from baton import errors\n"
        "    from . import limits  # deferred: a reason\n    importlib.import_module('baton.skills')\n"
    )
    assert _own_function_level_imports(tmp_path / "baton") == [
        ("baton/planted.py", 5, "from baton import errors"),
        ("baton/planted.py", 6, "from . import limits  # deferred: a reason"),
    ]
    assert _import_module_of_own(tmp_path / "baton") == ["baton/planted.py:7"]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    modules = sorted(m for m in graph.modules if m == "baton" or m.startswith("baton."))

    def visit(root: str) -> None:  # iterative: the graph is deep enough to bother the recursion limit
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if not child.startswith("baton"):
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return sorted(components)


def test_no_import_cycle_between_any_two_modules():
    graph = grimp.build_graph("baton", cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = grimp.ImportGraph()
    for importer, imported in [
        ("baton.a", "baton.b"),
        ("baton.b", "baton.c"),
        ("baton.c", "baton.a"),
        ("baton.c", "baton.d"),
    ]:
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph) == [["baton.a", "baton.b", "baton.c"]]
