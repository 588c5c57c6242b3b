"""Reading templates: YAML (safe_load) -> pydantic -> semantic checks, every problem as an ``Issue``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from baton.errors import Issue, TemplateError
from baton.limits import limits
from baton.registry import skill_names
from baton.spec import reading
from baton.spec.checks import TEMPLATE_SUFFIXES, check_workflow
from baton.spec.deprecations import Deprecated, upgrade, warn
from baton.spec.located import Located, node_line
from baton.spec.models import Workflow
from baton.spec.reading import format_loc
from baton.spec.roster import Agent, Roster


class Source(Located):
    """One YAML file being read: its name for messages, its text (bounded, UTF-8), and an issue factory."""

    def __init__(self, path: Path, root: Path | None = None, data: bytes | None = None):
        """``data``: the file's bytes, when the caller has read them already (bounded by read_bytes)."""
        super().__init__(str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path))
        self.path = path
        self.text = reading.read_text(path, self.name) if data is None else reading.decode(data, self.name)

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
                source.issue_of(data, Roster, {**err, "loc": ("agents", index, *err["loc"])})
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
