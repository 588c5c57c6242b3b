"""Reading templates: YAML (safe_load) -> pydantic -> semantic checks, every problem as an ``Issue``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from baton.errors import Issue, TemplateError
from baton.spec.checks import check_workflow
from baton.spec.models import Workflow
from baton.spec.roster import Roster

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Loc = Sequence[str | int]

_FIXES = {
    "missing": "add this key",
    "extra_forbidden": "remove or rename this key",
    "string_type": "use a string",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "list_type": "use a list",
    "dict_type": "use a mapping of key: value",
    "model_type": "use a mapping of key: value",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use lowercase letters, digits and underscores, starting with a letter",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "too_short": "add at least one entry",
    "string_too_short": "write a non-empty text",
    "time_delta_parsing": "use seconds (300) or a duration like '30s', '5m', '1h30m'",
    "time_delta_type": "use seconds (300) or a duration like '30s', '5m', '1h30m'",
    "negative_duration": "use 0 or more: seconds (300) or a duration like '30s', '5m', '1h30m'",
}


def format_loc(loc: Loc) -> str:
    """``('steps', 2, 'agent')`` -> ``steps[2].agent``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(text: str, loc: Loc) -> int | None:
    """The 1-based line of the deepest node of ``loc`` found in the YAML ``text``."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return None
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


def _data_loc(data: Any, loc: Loc) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic ``loc`` that exist in the data (drops union and validator tags)."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif isinstance(part, str) and ("[" in part or part in _UNION_TAGS):
            continue  # pydantic names the union member it tried; not a key of the file
        else:
            kept.append(part)  # a missing or forbidden key: name it, then stop
            break
        kept.append(part)
    return tuple(kept)


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


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


class Source:
    """One YAML file being read: its name for messages, its text, and an issue factory."""

    def __init__(self, path: Path, root: Path | None = None):
        self.path = path
        self.name = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        self.text = path.read_text(encoding="utf-8")

    def issue(self, loc: Loc, message: str, fix: str = "") -> Issue:
        return Issue(self.name, format_loc(loc), message, fix, line_of(self.text, loc) if loc else None)

    def parse(self) -> Any:
        try:
            return yaml.load(self.text, Loader=_LOADER)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            problem = getattr(error, "problem", None) or str(error)
            raise TemplateError(
                [
                    Issue(
                        self.name,
                        "",
                        f"YAML syntax error: {problem}",
                        "fix the YAML syntax at this line",
                        mark.line + 1 if mark else None,
                    )
                ]
            ) from None

    def validate(self, model: type[BaseModel], data: Any) -> Any:
        if not isinstance(data, dict):
            raise TemplateError(
                [
                    self.issue(
                        (),
                        f"expected a mapping at the top, got {type(data).__name__}",
                        f"start the file with the keys of a {model.__name__.lower()}",
                    )
                ]
            )
        try:
            return model.model_validate(data)
        except ValidationError as error:
            issues = []
            for err in error.errors():
                loc = _data_loc(data, err["loc"])
                message = err["msg"].removeprefix("Value error, ")
                fix = _FIXES.get(err["type"], "")
                if err["type"] == "extra_forbidden":
                    message = f"unknown key '{loc[-1]}'"
                    if close := difflib.get_close_matches(str(loc[-1]), _known_keys(model), n=1):
                        fix = f"did you mean '{close[0]}'?"
                elif err["type"] == "missing":
                    message = f"missing required key '{err['loc'][-1]}'"
                issues.append(self.issue(loc, message, fix))
            raise TemplateError(issues) from None


def load_roster(path: Path, root: Path | None = None) -> Roster:
    """Read the agent roster; raises ``TemplateError`` listing every problem."""
    source = Source(path, root)
    roster = source.validate(Roster, source.parse())
    from baton.skills import skill_names

    issues = [
        source.issue(
            ("agents", index, "skill"),
            f"unknown skill '{agent.skill}'",
            f"use a registered skill: {', '.join(skill_names())}",
        )
        for index, agent in enumerate(roster.agents)
        if agent.skill is not None and agent.skill not in skill_names()
    ]
    if issues:
        raise TemplateError(issues)
    return roster


def load_workflow(path: Path, roster: Roster | None, root: Path | None = None) -> Workflow:
    """Read one template; raises ``TemplateError`` listing every problem found in it."""
    source = Source(path, root)
    workflow = source.validate(Workflow, source.parse())
    issues = [source.issue(loc, message, fix) for loc, message, fix in check_workflow(workflow, roster, path)]
    if issues:
        raise TemplateError(issues)
    return workflow
