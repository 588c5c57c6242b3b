"""pydantic's errors as located issues, for every file a user writes (a workflow, the roster, budgets.yaml,
monitoring.yaml): ``file:line: key.path: message (fix: ...)``, the key path as the file spells it (not
pydantic's union members and validators), an unknown key with the known key it is closest to, and a fix
for each kind of error."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import cache
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from baton.errors import Issue, TemplateError
from baton.spec.deprecations import Deprecated
from baton.spec.options import SHAPE_TAGS
from baton.spec.reading import format_loc
from baton.spec.step import MOVED_KEYS, ONE_WORKER, STEP_TAGS, named_workers

Loc = Sequence[str | int]

_DURATION_FIX = "use seconds (300) or a duration like '30s', '5m', '1h30m'"
_FIXES = {
    "missing": "add this key",
    "extra_forbidden": "remove or rename this key",
    "string_type": "use a string",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "float_type": "use a number",
    "finite_number": "use a finite number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "list_type": "use a list",
    "dict_type": "use a mapping of key: value",
    "model_type": "use a mapping of key: value",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use lowercase letters, digits and underscores, starting with a letter",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "too_short": "add at least one entry",
    "too_long": "use fewer entries",
    "string_too_short": "write a non-empty text",
    "time_delta_parsing": _DURATION_FIX,
    "time_delta_type": _DURATION_FIX,
    "negative_duration": "use 0 or more: seconds (300) or a duration like '30s', '5m', '1h30m'",
}

_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", *STEP_TAGS, *SHAPE_TAGS})


def node_line(node: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of the deepest node of ``loc`` found under ``node`` (a composed YAML tree)."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _data_loc(data: Any, loc: Loc, tags: frozenset[str] = frozenset()) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic ``loc`` that exist in the data (drops union and validator tags, and the
    model's own ``tags``: the values of a discriminator, which pydantic names as it tries a member)."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif isinstance(part, str) and (
            "[" in part or part in _UNION_TAGS or part in tags or part[:1].isupper()
        ):
            continue  # pydantic names the union member it tried; not a key of the file
        else:
            kept.append(part)  # a missing or forbidden key: name it, then stop
            break
        kept.append(part)
    return tuple(kept)


def _shorthand_miss(err: Any) -> bool:
    """A mapping given where a string shorthand is also allowed (``for_each: plan`` or ``{over: ...}``):
    pydantic also says it is not a string, which is noise next to the mapping's own errors."""
    return err["type"] == "string_type" and err["loc"][-1:] == ("str",) and isinstance(err.get("input"), dict)


def _in_step(loc: Loc) -> bool:
    """Whether ``loc`` is a key of a step (``steps[i].<key>``)."""
    return len(loc) == 3 and loc[0] == "steps" and isinstance(loc[1], int)


@cache
def _known_keys(model: type[BaseModel]) -> list[str]:
    """Every key any model nested in ``model`` accepts, for "did you mean" hints."""
    keys: set[str] = set()
    pending, seen = [model.model_json_schema()], set()
    while pending:
        schema = pending.pop()
        for sub in (*schema.get("$defs", {}).values(), schema):
            if id(sub) not in seen:
                seen.add(id(sub))
                keys |= set(sub.get("properties", {}))
    return sorted(keys)


class Located:
    """Where a file's problems are told: its name, and its composed node tree for the lines (None for data
    that was not read from a file here: its issues have no line). A model may say how to start its file
    (``TOP_FIX``) and name the tags pydantic puts in its errors' locations (``LOC_TAGS``)."""

    def __init__(self, name: str, node: yaml.Node | None = None):
        self.name = name
        self.node = node
        self.moved: list[Deprecated] = []  # old forms translated: an issue in today's form is told at theirs

    def issue(self, loc: Loc, message: str, fix: str = "") -> Issue:
        path, line = format_loc(loc), node_line(self.node, loc) if loc else None
        for notice in self.moved:
            new = notice.moved_to or ""
            if path == new or path.startswith((f"{new}.", f"{new}[")):
                path, line = notice.path + path[len(new) :], notice.line
        return Issue(self.name, path, message, fix, line)

    def validate(self, model: type[BaseModel], data: Any) -> Any:
        """``data`` as a ``model``, or ``TemplateError`` listing every problem, each located."""
        if not isinstance(data, dict):
            start = (
                getattr(model, "TOP_FIX", None)
                or f"start the file with the keys of a {model.__name__.lower()}"
            )
            raise TemplateError(
                [self.issue((), f"expected a mapping at the top, got {type(data).__name__}", start)]
            )
        try:
            return model.model_validate(data)
        except ValidationError as error:
            raise TemplateError(
                [self.issue_of(data, model, err) for err in error.errors() if not _shorthand_miss(err)]
            ) from None

    def issue_of(self, data: Any, model: type[BaseModel], err: Any) -> Issue:
        """The located issue of one of pydantic's errors ``err`` in validating ``data`` as ``model``."""
        loc = _data_loc(data, err["loc"], getattr(model, "LOC_TAGS", frozenset()))
        message = err["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(err["type"], "")
        if err["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'"
            if close := difflib.get_close_matches(str(loc[-1]), _known_keys(model), n=1):
                same = close[0] == loc[-1]
                fix = "remove it: it is a key elsewhere, not here" if same else f"did you mean '{close[0]}'?"
        elif err["type"] == "missing":
            message = f"missing required key '{err['loc'][-1]}'"
        elif err["type"] == "one_worker":
            named = named_workers(err.get("input"))
            message = ONE_WORKER + (f"; it names {' and '.join(named)}" if len(named) > 1 else "")
            fix = "keep one of them" if len(named) > 1 else "name who does the step"
        elif err["type"] == "string_pattern_mismatch" and str(
            err.get("ctx", {}).get("pattern", "")
        ).startswith("^[^"):
            fix = ""  # a pattern of characters refused (control characters), not the shape of a name
        if err["type"] == "extra_forbidden" and str(loc[-1]) in MOVED_KEYS and _in_step(loc):
            fix = MOVED_KEYS[str(loc[-1])]
        return self.issue(loc, message, fix)
