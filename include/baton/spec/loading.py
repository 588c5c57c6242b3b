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
from baton.limits import limits
from baton.spec import reading
from baton.spec.checks import TEMPLATE_SUFFIXES, check_workflow
from baton.spec.deprecations import Deprecated, upgrade, warn
from baton.spec.models import Workflow
from baton.spec.options import SHAPE_TAGS
from baton.spec.reading import format_loc
from baton.spec.roster import Agent, Roster
from baton.spec.step import MOVED_KEYS, ONE_WORKER, STEP_TAGS, named_workers

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


def _data_loc(data: Any, loc: Loc) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic ``loc`` that exist in the data (drops union and validator tags)."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif isinstance(part, str) and ("[" in part or part in _UNION_TAGS or part[:1].isupper()):
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


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", *STEP_TAGS, *SHAPE_TAGS})


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


class Source:
    """One YAML file being read: its name for messages, its text (bounded, UTF-8), and an issue factory."""

    def __init__(self, path: Path, root: Path | None = None, data: bytes | None = None):
        """``data``: the file's bytes, when the caller has read them already (bounded by read_bytes)."""
        self.path = path
        self.name = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        self.text = reading.read_text(path, self.name) if data is None else reading.decode(data, self.name)
        self.node: yaml.Node | None = None
        self.moved: list[Deprecated] = []  # old forms translated: an issue in today's form is told at theirs

    def issue(self, loc: Loc, message: str, fix: str = "") -> Issue:
        path, line = format_loc(loc), node_line(self.node, loc) if loc else None
        for notice in self.moved:
            new = notice.moved_to or ""
            if path == new or path.startswith((f"{new}.", f"{new}[")):
                path, line = notice.path + path[len(new) :], notice.line
        return Issue(self.name, path, message, fix, line)

    def parse(self) -> Any:
        """The file's data: read at once when :func:`reading.quick_load` may, else once
        :func:`reading.scan` found nothing it must refuse."""
        quick = reading.quick_load(self.text, self.name)
        if quick is None:  # anchors, merge keys, explicit tags, a large file: every check apart
            reading.scan(self.text, self.name)
            quick = reading.load(self.text, self.name)
        data, self.node = quick
        return data

    def upgrade(self, data: Any, kind: str) -> list[Deprecated]:
        """Translate the deprecated forms of ``data`` (a ``kind``: "workflow" or "roster") to today's, in
        place (the table of :mod:`baton.spec.deprecations`); a notice, located in this file, for each."""
        if not isinstance(data, dict):
            return []
        found = [
            Deprecated(
                self.name,
                format_loc(old),
                node_line(self.node, old),
                deprecation,
                fix,
                new and format_loc(new),
            )
            for old, new, deprecation, fix in upgrade(data, kind)
        ]
        self.moved = [notice for notice in found if notice.moved_to]
        return found

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
            raise TemplateError(
                [self._issue_of(data, model, err) for err in error.errors() if not _shorthand_miss(err)]
            ) from None

    def _issue_of(self, data: Any, model: type[BaseModel], err: Any) -> Issue:
        loc = _data_loc(data, err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(err["type"], "")
        if err["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'"
            if close := difflib.get_close_matches(str(loc[-1]), _known_keys(model), n=1):
                fix = f"did you mean '{close[0]}'?"
        elif err["type"] == "missing":
            message = f"missing required key '{err['loc'][-1]}'"
        elif err["type"] == "one_worker":
            named = named_workers(err.get("input"))
            message = ONE_WORKER + (f"; it names {' and '.join(named)}" if len(named) > 1 else "")
            fix = "keep one of them" if len(named) > 1 else "name who does the step"
        if err["type"] == "extra_forbidden" and str(loc[-1]) in MOVED_KEYS and _in_step(loc):
            fix = MOVED_KEYS[str(loc[-1])]
        return self.issue(loc, message, fix)

    def refuse_too_many_steps(self, data: dict[str, Any]) -> None:
        """A workflow of more steps than ``max_steps`` is refused before anything else reads them."""
        steps, bound = data.get("steps"), limits()
        if isinstance(steps, list) and len(steps) > bound.max_steps:
            raise TemplateError(
                [
                    self.issue(
                        ("steps",),
                        f"{len(steps):,} steps, over the limit of {bound.max_steps:,} for one workflow",
                        f"split it into workflows that trigger each other (emits / trigger.asset), "
                        f"{bound.fix('max_steps')}",
                    )
                ]
            )


def load_roster(path: Path, root: Path | None = None) -> Roster:
    """:func:`read_roster`, its deprecated forms warned about (:class:`BatonDeprecationWarning`)."""
    roster, notices = read_roster(path, root)
    warn(notices)
    return roster


def read_roster(path: Path, root: Path | None = None) -> tuple[Roster, list[Deprecated]]:
    """Read the agent roster: the healthy agents, and the problems of the others; and the deprecated forms
    it uses (translated to today's).

    One broken agent (a wrong field, a name used twice, an unknown skill) does not take the roster down:
    it is left out, its problems are in ``roster.issues`` and its name in ``roster.broken``, so that only
    the workflows naming it fail. A file that cannot be read as a roster at all raises ``TemplateError``.
    """
    source = Source(path, root)
    data = source.parse()
    notices = source.upgrade(data, "roster")
    if not isinstance(data, dict) or not isinstance(data.get("agents", []), list):
        source.validate(Roster, data)  # raises, naming what is wrong with the file's shape
    rest = source.validate(Roster, {key: value for key, value in data.items() if key != "agents"})
    agents, issues, broken = split_agents(source, data, data.get("agents") or [])
    return rest.model_copy(update={"agents": agents}).with_problems(issues, broken), notices


def is_template(path: Path) -> bool:
    """The one rule for template files: a name ending in ``.yaml`` or ``.yml``, in any case, that is not
    hidden (an editor's ``.#name.yaml`` lock or swap file is not a template)."""
    return path.suffix.lower() in TEMPLATE_SUFFIXES and not path.name.startswith(".")


def template_files(folder: Path) -> list[Path]:
    """The template files directly in ``folder``, by name."""
    return sorted(path for path in folder.iterdir() if is_template(path) and path.is_file())


def template_path(folder: Path, workflow: str) -> Path | None:
    """The template file of ``workflow`` in ``folder`` (``<workflow>.yaml``, ``.yml``, any case)."""
    if not folder.is_dir():
        return None
    return next((path for path in template_files(folder) if path.stem == workflow), None)


def split_agents(
    source: Source, data: dict[str, Any], entries: list[Any]
) -> tuple[list[Agent], list[Issue], dict[str, str]]:
    """(the healthy agents, every problem of the others, broken name -> why) of the roster's entries."""
    from baton.registry import skill_names

    where: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            where.setdefault(entry["name"], []).append(index)
    agents: list[Agent] = []
    issues: list[Issue] = []
    broken: dict[str, str] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else None
        found: list[Issue] = []
        if name is not None and len(where[name]) > 1:
            others = ", ".join(f"agents[{i}]" for i in where[name] if i != index)
            found.append(
                source.issue(
                    ("agents", index, "name"),
                    f"duplicate agent name '{name}' (also at {others})",
                    "give every agent its own name; the workflows naming it fail until then",
                )
            )
        try:
            agent = Agent.model_validate(entry)
        except ValidationError as error:
            found += [
                source._issue_of(data, Roster, {**err, "loc": ("agents", index, *err["loc"])})
                for err in error.errors()
            ]
        else:
            if agent.skill is not None and agent.skill not in skill_names():
                found.append(
                    source.issue(
                        ("agents", index, "skill"),
                        f"unknown skill '{agent.skill}'",
                        f"use a registered skill: {', '.join(skill_names())}",
                    )
                )
        if found:
            issues += found
            if name is not None:
                broken.setdefault(name, f"{found[0].path}: {found[0].message}")
        else:
            agents.append(agent)
    return agents, issues, broken


def load_workflow(
    path: Path, roster: Roster | None, root: Path | None = None, data: bytes | None = None
) -> Workflow:
    """Read one template (or its bytes ``data``, read already); raises ``TemplateError`` listing every
    problem found in it. Its deprecated forms are translated, each with a :class:`BatonDeprecationWarning`
    (which Airflow records among the import warnings of the DAG file being parsed)."""
    workflow, notices = read_workflow(path, roster, root, data)
    warn(notices)
    return workflow


def read_workflow(
    path: Path, roster: Roster | None, root: Path | None = None, data: bytes | None = None
) -> tuple[Workflow, list[Deprecated]]:
    """:func:`load_workflow` without the warnings: the workflow, and the deprecated forms it uses (each
    translated to today's form before validation)."""
    source = Source(path, root, data)
    data = source.parse()
    if isinstance(data, dict):
        source.refuse_too_many_steps(data)
    notices = source.upgrade(data, "workflow")
    workflow = source.validate(Workflow, data)
    issues = [source.issue(loc, message, fix) for loc, message, fix in check_workflow(workflow, roster, path)]
    if issues:
        raise TemplateError(issues)
    return workflow, notices


def load_named(dags_folder: Path, workflow: str) -> tuple[Workflow, Roster]:
    """The workflow ``workflow`` of a dags folder (``workflows/<workflow>.yaml``) and its roster;
    raises ``TemplateError`` when it is broken or not there."""
    folder = dags_folder / "workflows"
    path = template_path(folder, workflow)
    if path is None:
        known = [p.stem for p in template_files(folder)] if folder.is_dir() else []
        raise TemplateError(
            [
                Issue(
                    str(folder),
                    "",
                    f"no workflow '{workflow}' here",
                    f"known: {', '.join(known) or '(none)'}",
                )
            ]
        )
    roster_path = dags_folder / "agents.yaml"
    roster = load_roster(roster_path) if roster_path.exists() else Roster()
    return load_workflow(path, roster), roster
