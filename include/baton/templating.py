"""Jinja for instructions, ``when`` and ``writes``: sandboxed, strict, over ``inputs``, ``steps``, ``run``
and ``context`` (the run's shared context)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

CONTEXT_NAMES = frozenset({"inputs", "steps", "run", "context"})

ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _expression_source(expression: str) -> str:
    return "{{ (" + expression + ") }}"


def references(
    source: str, *, expression: bool = False
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Return (unknown top-level names, step ids, input names) that ``source`` reads.

    Each distinct source is parsed once per process (the checks and the plan both ask); the
    results are frozensets, so no caller can change what the next one gets.

    :raises jinja2.TemplateSyntaxError: when ``source`` is not valid Jinja.
    """
    return _references(source, expression)[0]


def context_reads(source: str, *, expression: bool = False) -> frozenset[str]:
    """The shared-context keys ``source`` reads (``context.key`` or ``context['key']``)."""
    return _references(source, expression)[1]


@lru_cache(maxsize=4096)
def _references(
    source: str, expression: bool
) -> tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], frozenset[str]]:
    tree = ENV.parse(_expression_source(source) if expression else source)
    loaded: set[str] = set()
    # Names the template defines itself, wherever it does: {% set %} (also {% set a, b = ... %}),
    # {% for %} targets, {% with %}, macro and call-block arguments, imports. A name read outside the
    # scope that defines it is accepted here (StrictUndefined still stops it at render time); a name
    # defined nowhere in the template is always reported.
    defined: set[str] = {"self"}  # Jinja binds ``self`` (the template reference) in every template
    found: dict[str, set[str]] = {"steps": set(), "inputs": set(), "context": set()}
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        stack.extend(node.iter_child_nodes())
        if isinstance(node, nodes.Name):
            (loaded if node.ctx == "load" else defined).add(node.name)  # ctx "store" or "param"
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
            owner = node.node
            if isinstance(owner, nodes.Name) and owner.ctx == "load" and owner.name in found:
                if isinstance(node, nodes.Getattr):
                    found[owner.name].add(node.attr)
                elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                    found[owner.name].add(node.arg.value)
        elif isinstance(node, nodes.NSRef):  # {% set ns.attr = ... %} reads the namespace ``ns``
            loaded.add(node.name)
        elif isinstance(node, nodes.For):
            defined.add("loop")
        elif isinstance(node, nodes.Macro):
            defined.update((node.name, "caller", "varargs", "kwargs"))
        elif isinstance(node, nodes.CallBlock):
            defined.update(("caller", "varargs", "kwargs"))
        elif isinstance(node, nodes.Block):
            defined.add("super")
        elif isinstance(node, nodes.Import):
            defined.add(node.target)
        elif isinstance(node, nodes.FromImport):
            defined.update(name if isinstance(name, str) else name[1] for name in node.names)
    unknown = loaded.difference(defined, CONTEXT_NAMES, ENV.globals)
    return (frozenset(unknown), frozenset(found["steps"]), frozenset(found["inputs"])), frozenset(
        found["context"]
    )


@lru_cache(maxsize=1024)
def _template(source: str) -> Any:
    return ENV.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    """Render an instruction; an undefined name raises ``jinja2.UndefinedError``. Each distinct
    source is compiled once per process (a fan-out renders one instruction for every item)."""
    return _template(source).render(context)


def evaluate(expression: str, context: dict[str, Any]) -> bool:
    """Evaluate a ``when`` condition to a bool."""
    return bool(value(expression, context))


@lru_cache(maxsize=1024)
def _expression(expression: str) -> Any:
    return ENV.compile_expression(expression, undefined_to_none=False)


def value(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate an expression (a ``writes`` value, e.g. ``output.files``) to whatever it gives; each
    distinct expression is compiled once per process, like an instruction."""
    return _expression(expression)(**context)


def arguments(with_: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Render a step's ``with`` (the arguments of its skill): every string, in nested dicts and lists
    too, is Jinja over ``context``; a string that is exactly one ``{{ expression }}`` gives the
    expression's value with its type (a list stays a list, a number a number). Keys are not rendered."""
    return {key: _argument(value, context) for key, value in with_.items()}


def _argument(item: Any, context: dict[str, Any]) -> Any:
    if isinstance(item, str):
        expression = _single_expression(item)
        if expression is None:
            return render(item, context)
        result = value(expression, context)
        if isinstance(result, Undefined):
            str(result)  # StrictUndefined: raises the UndefinedError that names the missing name
        return result
    if isinstance(item, dict):
        return {key: _argument(element, context) for key, element in item.items()}
    if isinstance(item, (list, tuple)):
        return [_argument(element, context) for element in item]
    return item


@lru_cache(maxsize=1024)
def _single_expression(source: str) -> str | None:
    """The expression of a string that is one ``{{ ... }}`` and nothing else (spaces aside), or None."""
    text = source.strip()
    if not (text.startswith("{{") and text.endswith("}}")) or "{%" in text or "{#" in text:
        return None
    body = ENV.parse(text).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    if isinstance(body[0].nodes[0], nodes.TemplateData):
        return None
    inner = text[2:-2]
    inner = inner[1:] if inner[:1] in ("-", "+") else inner  # whitespace control: {{- ... -}}
    inner = inner[:-1] if inner[-1:] in ("-", "+") else inner
    return inner.strip()
