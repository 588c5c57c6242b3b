"""Jinja for instructions and ``when`` conditions: sandboxed, strict, over ``inputs``, ``steps`` and ``run``."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

CONTEXT_NAMES = frozenset({"inputs", "steps", "run"})

ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _expression_source(expression: str) -> str:
    return "{{ (" + expression + ") }}"


def references(source: str, *, expression: bool = False) -> tuple[set[str], set[str], set[str]]:
    """Return (unknown top-level names, step ids, input names) that ``source`` reads.

    :raises jinja2.TemplateSyntaxError: when ``source`` is not valid Jinja.
    """
    tree = ENV.parse(_expression_source(source) if expression else source)
    unknown = meta.find_undeclared_variables(tree) - CONTEXT_NAMES
    found: dict[str, set[str]] = {"steps": set(), "inputs": set()}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name in found):
            continue
        if isinstance(node, nodes.Getattr):
            found[node.node.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[node.node.name].add(node.arg.value)
    return unknown, found["steps"], found["inputs"]


def render(source: str, context: dict[str, Any]) -> str:
    """Render an instruction; an undefined name raises ``jinja2.UndefinedError``."""
    return ENV.from_string(source).render(context)


def evaluate(expression: str, context: dict[str, Any]) -> bool:
    """Evaluate a ``when`` condition to a bool."""
    return bool(ENV.compile_expression(expression, undefined_to_none=False)(**context))
