"""Rendering an instruction, evaluating a condition or a writes expression, and a step's with arguments, each
within one budget of the sandbox's limits."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateSyntaxError

from baton.limits import limits
from baton.templating.analysis import _expression_source
from baton.templating.sandbox import _BUDGET, ENV, RenderLimit, _bound_loops, _Budget, _budget, _too_big


@lru_cache(maxsize=1024)
def _template(source: str) -> Any:
    return ENV.from_string(_bound_loops(ENV.parse(source)))


def _within_budget(work: Any) -> Any:
    """Run ``work()`` with a fresh budget for one rendering (or inside the one already running)."""
    if _BUDGET.get() is not None:
        return work()
    bound = limits()
    token = _BUDGET.set(_Budget(bound, time.monotonic() + bound.max_render_seconds))
    try:
        return work()
    except RecursionError:
        raise RenderLimit(
            "the template recurses too deeply (a macro or a recursive loop that keeps calling itself)"
        ) from None
    finally:
        _BUDGET.reset(token)


def render(source: str, context: dict[str, Any]) -> str:
    """Render an instruction; an undefined name raises ``jinja2.UndefinedError``, a limit ``RenderLimit``.
    Each distinct source is compiled once per process (a fan-out renders one instruction for every item)."""

    def work() -> str:
        budget, parts, size = _budget(), [], 0
        for part in _template(source).generate(context):
            size += len(part)
            if size > budget.bound.max_rendered_chars:
                raise _too_big(size, "the rendered text")
            parts.append(part)
        return "".join(parts)

    return _within_budget(work)


def evaluate(expression: str, context: dict[str, Any]) -> bool:
    """Evaluate a ``when`` condition to a bool."""
    return bool(value(expression, context))


@lru_cache(maxsize=1024)
def _expression(expression: str) -> Any:
    parsed = ENV.parse(_expression_source(expression))
    output = parsed.body[0] if len(parsed.body) == 1 else None
    if not isinstance(output, nodes.Output) or len(output.nodes) != 1:
        raise TemplateSyntaxError(f"not one expression: {expression!r}", 1)
    tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), output.nodes[0], lineno=1)], lineno=1)
    return TemplateExpression(ENV.from_string(_bound_loops(tree)), undefined_to_none=False)


def value(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate an expression (a ``writes`` value, e.g. ``output.files``) to whatever it gives; each
    distinct expression is compiled once per process, like an instruction."""
    return _within_budget(lambda: _expression(expression)(**context))


def arguments(with_: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Render a step's ``with`` (the arguments of its skill): every string, in nested dicts and lists
    too, is Jinja over ``context``; a string that is exactly one ``{{ expression }}`` gives the
    expression's value with its type (a list stays a list, a number a number). Keys are not rendered.
    The whole of ``with`` is one rendering: its strings share the limits."""
    return _within_budget(lambda: {key: _argument(value, context) for key, value in with_.items()})


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
