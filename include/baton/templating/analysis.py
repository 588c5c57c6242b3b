"""What a Jinja text reads (scope names, step ids, inputs, context keys) and what it must not touch, found at
validate time by one iterative walk of its syntax tree."""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import nodes

from baton.templating.sandbox import ATTRIBUTE_FILTERS, CONTEXT_NAMES, ENV, LOADS_NOTHING, MUTATING_METHODS

# The common form of an instruction: plain text with ``{{ name.attr.attr }}`` holes, each with at most one
# filter of SAFE_FILTERS and at most one constant argument (``{{ steps.a.total | default('n/a') }}``). Its
# reads follow from the text alone, so it needs no syntax tree (a Jinja parse is most of the cost of
# validating a template). Anything else (other filters, calls, subscripts, blocks, comments, private
# names, keywords) takes the parse.
_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
# Filters that read no attribute by name (those are ATTRIBUTE_FILTERS, checked on the tree) and take at
# most one plain argument.
SAFE_FILTERS = ("default", "d", "upper", "lower", "title", "capitalize", "trim", "tojson", "length", "count")
SAFE_FILTERS += ("int", "float", "string", "round", "abs", "first", "last", "join", "list", "e", "escape")
_CONSTANT = r"""(?:'[^'\\{}%#]*'|"[^"\\{}%#]*"|[0-9]+(?:\.[0-9]+)?)"""
_FILTER = r"(?:\s*\|\s*(" + "|".join(SAFE_FILTERS) + r")\b(?:\s*\(\s*" + _CONSTANT + r"\s*\))?)?"
_BODY = r"\s*(" + _IDENT + r"(?:\." + _IDENT + r")*)" + _FILTER + r"\s*"
_HOLE = re.compile(r"\{\{" + _BODY + r"\}\}")
_PATH = re.compile(_BODY)
_MARKUP = re.compile(r"\{[{%#]")
# Names Jinja's parser reads as constants or operators, never as a variable.
_KEYWORDS = frozenset(
    [
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
        "elif",
        "for",
        "endfor",
        "recursive",
    ]
)


def _expression_source(expression: str) -> str:
    return "{{ (" + expression + ") }}"


class Reads(NamedTuple):
    """What a Jinja text reads, and what it must not do."""

    unknown: frozenset[str]  # top-level names that are neither scope names nor defined by the text
    steps: frozenset[str]
    inputs: frozenset[str]
    context: frozenset[str]
    unsafe: tuple[str, ...]  # why each unsafe access is refused
    depth: int  # the deepest nesting of the text's syntax tree
    names: tuple[frozenset[str], frozenset[str], frozenset[str]]  # (unknown, steps, inputs)


def references(
    source: str, *, expression: bool = False
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Return (unknown top-level names, step ids, input names) that ``source`` reads.

    :raises jinja2.TemplateSyntaxError: when ``source`` is not valid Jinja.
    """
    return analyse(source, expression=expression).names


def context_reads(source: str, *, expression: bool = False) -> frozenset[str]:
    """The shared-context keys ``source`` reads (``context.key`` or ``context['key']``)."""
    return analyse(source, expression=expression).context


def analyse(source: str, *, expression: bool = False) -> Reads:
    """What ``source`` reads and what it must not do (see :func:`_analyse`)."""
    return _analyse(source, expression)


@lru_cache(maxsize=4096)
def _analyse(source: str, expression: bool) -> Reads:
    """What ``source`` reads and what it must not do. Each distinct source is parsed once per process (the
    checks and the plan both ask); the results are immutable, so no caller can change what the next one
    gets. The walk is iterative: a deeply nested text cannot exhaust the recursion here.

    :raises jinja2.TemplateSyntaxError: when ``source`` is not valid Jinja.
    :raises RecursionError: when it is nested too deeply for Jinja's own parser.
    """
    # long: one iterative walk of the syntax tree; each node kind adds what it defines or reads
    if (plain := _plain_reads(source, expression)) is not None:
        return plain
    tree = ENV.parse(_expression_source(source) if expression else source)
    loaded: set[str] = set()
    # Names the template defines itself, wherever it does: {% set %} (also {% set a, b = ... %}),
    # {% for %} targets, {% with %}, macro and call-block arguments, imports. A name read outside the
    # scope that defines it is accepted here (StrictUndefined still stops it at render time); a name
    # defined nowhere in the template is always reported.
    defined: set[str] = {"self"}  # Jinja binds ``self`` (the template reference) in every template
    found: dict[str, set[str]] = {"steps": set(), "inputs": set(), "context": set()}
    unsafe: list[str] = []
    depth = 0
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        stack.extend(reversed([(child, level + 1) for child in node.iter_child_nodes()]))  # source order
        unsafe += _unsafe(node)
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
    unknown = frozenset(loaded.difference(defined, CONTEXT_NAMES, ENV.globals))
    steps, inputs = frozenset(found["steps"]), frozenset(found["inputs"])
    return Reads(
        unknown,
        steps,
        inputs,
        frozenset(found["context"]),
        tuple(dict.fromkeys(unsafe)),
        depth,
        (unknown, steps, inputs),
    )


def _plain_reads(source: str, expression: bool) -> Reads | None:
    """What a text of plain holes (``{{ a.b.c }}``; an expression ``a.b.c``) reads, the same as the tree
    walk finds (checked equal in the tests); None for any other text."""
    filtered: list[bool] = []  # each hole's filter puts its path a level deeper (Output > Filter > Getattr)
    if expression:
        match = _PATH.fullmatch(source)
        paths = [match[1]] if match else None
        filtered = [bool(match and match[2])]
    else:
        paths, data, start = [], [], 0
        for hole in _HOLE.finditer(source):
            data.append(source[start : hole.start()])
            paths.append(hole[1])
            filtered.append(bool(hole[2]))
            start = hole.end()
        data.append(source[start:])
        # markup left in the text, or a brace touching a hole (``{{{ a }}``), is for the parser
        if any(_MARKUP.search(text) for text in data) or any(
            data[i].endswith("{") or data[i + 1].startswith("}") for i in range(len(paths))
        ):
            paths = None
    if paths is None:
        return None
    parts = [path.split(".") for path in paths]
    if any(part in _KEYWORDS for path in parts for part in path):
        return None
    found: dict[str, set[str]] = {"steps": set(), "inputs": set(), "context": set()}
    for path in parts:
        if path[0] in found and len(path) > 1:
            found[path[0]].add(path[1])
    # Template > Output > (data | [Filter >] Getattr... > Name): a hole of n names is n + 1 levels deep, or
    # n + 2 with its filter (whose one constant argument is at level 3, no deeper than the name)
    levels = (1 + len(path) + deeper for path, deeper in zip(parts, filtered, strict=True))
    depth = max(levels, default=2 if source else 0)
    unknown = frozenset({path[0] for path in parts}.difference({"self"}, CONTEXT_NAMES, ENV.globals))
    steps, inputs = frozenset(found["steps"]), frozenset(found["inputs"])
    return Reads(unknown, steps, inputs, frozenset(found["context"]), (), depth, (unknown, steps, inputs))


def _private(name: Any) -> bool:
    return isinstance(name, str) and any(part.startswith("_") for part in name.split("."))


def _unsafe(node: nodes.Node) -> list[str]:
    """Why ``node`` is refused: it reaches a private or dunder attribute, or calls a method that changes
    the value it is called on (templates read data; they never change it)."""
    if isinstance(node, nodes.Getattr) and _private(node.attr):
        return [f"reads the private attribute '{node.attr}'"]
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and _private(node.arg.value):
        return [f"reads the private item '{node.arg.value}'"]
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Getattr)
        and node.node.attr in MUTATING_METHODS
    ):
        return [f"calls '{node.node.attr}()', which would change the value it is called on"]
    if isinstance(node, _LOADS):
        named = node.template.value if isinstance(node.template, nodes.Const) else "(named at run time)"
        return [f"{LOADS} '{str(named)[:200]}': {LOADS_NOTHING}"]
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Getattr)
        and node.node.attr in ("format", "format_map")
        and isinstance(node.node.node, nodes.Const)
        and isinstance(node.node.node.value, str)
    ):
        return _format_fields(node.node.node.value)
    if isinstance(node, nodes.Filter | nodes.Test) and node.name in ATTRIBUTE_FILTERS:
        named = [arg.value for arg in node.args if isinstance(arg, nodes.Const)]
        named += [kw.value.value for kw in node.kwargs if isinstance(kw.value, nodes.Const)]
        return [
            f"names the private attribute '{name}' in the filter {node.name}"
            for name in named
            if _private(name)
        ]
    return []


LOADS = "loads the template"  # how a refused {% include %}, {% import %}, {% from %} or {% extends %} reads
# A format field's name after its first part: ``.attribute`` or ``[item]`` (Python's format grammar).
_FIELD_PARTS = re.compile(r"\.([^.\[]*)|\[([^\]]*)\]")
_LOADS = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


def _format_fields(text: str) -> list[str]:
    """Why a literal ``str.format`` string always fails in the sandbox: a field that reads a private
    attribute or item (``'{0.__class__}'``: the sandbox's formatter refuses it as it refuses
    ``x.__class__``), or a string ``str.format`` cannot read."""
    found = []
    try:
        for _, field, spec, _ in string.Formatter().parse(text):
            for name in (field, *(inner for _, inner, _, _ in string.Formatter().parse(spec or ""))):
                if not name:
                    continue
                private = [(a, i) for a, i in _FIELD_PARTS.findall(name) if _private(a or i)]
                if private:  # the first one stops the rendering
                    attribute, item = private[0]
                    kind = "attribute" if attribute else "item"
                    found.append(f"formats the private {kind} '{attribute or item}' ('{{{name[:100]}}}')")
    except ValueError as error:
        return [f"formats with a string str.format cannot read ({error})"]
    return found
