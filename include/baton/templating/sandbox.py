"""Jinja's immutable sandbox with Baton's limits: every loop of one rendering shares an iteration budget, the
clock is watched, and operations that would make a huge value are refused before they run."""

from __future__ import annotations

import contextvars
import functools
import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, _mutable_spec

from baton.errors import BatonError
from baton.limits import Limits, limits

CONTEXT_NAMES = frozenset({"inputs", "steps", "run", "context"})
MUTATING_METHODS = frozenset(name for _, names in _mutable_spec for name in names)
# Filters whose arguments name attributes to read (``attr('x')``, ``map(attribute='x')``...).
ATTRIBUTE_FILTERS = frozenset(
    {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "unique", "min", "max", "sum"}
)
_LOOP = "baton_bounded_loop"  # the global every ``for`` of a rendering iterates through
_WIDTH = re.compile(r"\d+")
_INT_BITS = 65_536  # an integer result larger than this many bits is refused (2**65536 has 19,729 digits)
#: Why ``{% include %}``, ``{% import %}``, ``{% from %}`` and ``{% extends %}`` always fail: the same words at
#: run time (the loader below) and in ``baton validate`` (``templating.analysis``).
LOADS_NOTHING = "a template field is one text: Baton loads no other template into it"
LOAD_FIX = "write the text in the field itself, or pass it in through inputs or a step's output"


class RenderLimit(BatonError, SecurityError):
    """A rendering went past one of Baton's limits (output, time, loop iterations, a value's size)."""


@dataclass
class _Budget:
    """What one rendering may still spend."""

    bound: Limits
    deadline: float
    iterations: int = 0

    def tick(self, what: str = "") -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimit(
                f"rendering took longer than {self.bound.max_render_seconds:g} s{what}; "
                f"simplify the template, {self.bound.fix('max_render_seconds')}"
            )


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("baton_render_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # outside render()/value() (a template rendered directly): this call's own budget
        bound = limits()
        budget = _Budget(bound, time.monotonic() + bound.max_render_seconds)
    return budget


def _too_big(size: int, what: str) -> RenderLimit:
    bound = _budget().bound
    return RenderLimit(
        f"{what} would be {size:,} characters or items, over the limit of {bound.max_rendered_chars:,}; "
        f"shorten it, {bound.fix('max_rendered_chars')}"
    )


def _bounded_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``for`` of a rendering iterates through this: the iterations of all of them together are
    counted against ``max_render_iterations``, and the clock is looked at as they go."""
    budget = _budget()
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > budget.bound.max_render_iterations:
            raise RenderLimit(
                f"the template's loops made more than {budget.bound.max_render_iterations:,} iterations; "
                f"loop over less, {budget.bound.fix('max_render_iterations')}"
            )
        if budget.iterations % 256 == 0:
            budget.tick()
        yield item


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set | frozenset) else None


def _check_result(value: Any, what: str) -> Any:
    size = _size(value)
    if size is not None and size > _budget().bound.max_rendered_chars:
        raise _too_big(size, what)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _INT_BITS:
        raise RenderLimit(
            f"{what} gives an integer of more than {_INT_BITS:,} bits; templates do not need it"
        )
    return value


def _check_arguments(args: Iterable[Any], what: str) -> None:
    """A number given to a call or a filter (a width, a count) larger than the output limit would make
    a result larger than it: refused before the call."""
    limit = _budget().bound.max_rendered_chars
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > limit:
            raise _too_big(abs(arg), f"{what} with the argument {arg:,}")


def _check_format(text: Any, what: str) -> None:
    """A format string whose widths would make a result larger than the output limit."""
    if isinstance(text, str):
        _check_arguments((int(digits) for digits in _WIDTH.findall(text) if len(digits) < 30), what)
        if any(len(digits) >= 30 for digits in _WIDTH.findall(text)):
            raise _too_big(10**30, what)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with Baton's limits on what one rendering may spend."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _budget().tick()
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
        if operator == "**" and ints and abs(left) > 1 and right > 0:
            bits = right * math.log2(abs(left))
            if bits > _INT_BITS:
                raise RenderLimit(f"{left} ** {right} is an integer of about {bits:,.0f} bits; refused")
        if operator == "*" and ints and left.bit_length() + right.bit_length() > _INT_BITS:
            raise RenderLimit(f"a product of more than {_INT_BITS:,} bits; refused")
        if operator == "*" and not ints:
            sized, count = (left, right) if _size(left) is not None else (right, left)
            if _size(sized) is not None and isinstance(count, int):
                _check_result_size(_size(sized) * max(count, 0), "a repetition (*)")
        if operator == "+" and _size(left) is not None and _size(right) is not None:
            _check_result_size(_size(left) + _size(right), "a concatenation (+)")
        if operator == "%":
            _check_format(left, "a % format")
        return _check_result(super().call_binop(context, operator, left, right), f"'{operator}'")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().tick()
        name = getattr(__obj, "__name__", "a call")
        _check_arguments([*args, *kwargs.values()], f"{name}()")
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format at attribute access
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                grows = owner.count(args[0]) * max(0, len(args[1]) - len(args[0])) if args[0] else 0
                _check_result_size(len(owner) + grows, "str.replace()")
            if name == "expandtabs":
                _check_result_size(len(owner) + owner.count("\t") * int(args[0] if args else 8), name)
            if name in ("format", "format_map"):
                _check_format(owner, "str.format()")
        return _check_result(super().call(__context, __obj, *args, **kwargs), f"{name}()")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _budget().tick()
        return super().getattr(obj, attribute)


def _check_result_size(size: int, what: str) -> None:
    if size > _budget().bound.max_rendered_chars:
        raise _too_big(size, what)


def _bounded_filter(name: str, func: Any) -> Any:
    """A filter that looks at the clock and refuses widths, counts and results past the limits (Jinja calls
    filters directly, not through the sandbox's ``call``)."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context, eval_ctx or environment

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _budget().tick()
        value, rest = (args[skip], args[skip + 1 :]) if len(args) > skip else (None, ())
        _check_arguments([*rest, *kwargs.values()], f"the filter {name}")
        if name == "format":
            _check_format(value, "the filter format")
        if name == "replace" and len(rest) >= 2 and isinstance(value, str):
            old, new = str(rest[0]), str(rest[1])
            grows = value.count(old) * max(0, len(new) - len(old)) if old else 0
            _check_result_size(len(value) + grows, "the filter replace")
        return _check_result(func(*args, **kwargs), f"the filter {name}")

    return bounded


class _NoTemplates(BaseLoader):
    """The sandbox's loader: every template a text names is refused, with why and the fix (Jinja's own
    error without a loader is a ``TypeError`` that says neither)."""

    def get_source(self, environment: Any, template: str) -> Any:
        raise SecurityError(
            f"the template '{template[:200]}' is not loaded: {LOADS_NOTHING} (fix: {LOAD_FIX})"
        )


ENV = BoundedSandbox(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, loader=_NoTemplates()
)
ENV.globals[_LOOP] = _bounded_loop
ENV.filters = {name: _bounded_filter(name, func) for name, func in ENV.filters.items()}


def _bound_loops(tree: nodes.Template) -> nodes.Template:
    """Make every ``for`` of ``tree`` iterate through :func:`_bounded_loop` (a recursive loop's inner
    calls go through the sandbox's ``call``, which looks at the clock)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(_LOOP, "load"), [loop.iter], [], None, None, lineno=loop.lineno)
    tree.set_environment(ENV)
    return tree
