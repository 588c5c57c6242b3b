"""What changes between two versions of a workflow template, and whom it breaks (``baton diff``).

Breaking, for an existing caller or a step that reads another's output:

- an input removed (a caller that passes it has it ignored), added as required (a caller that does not
  pass it is refused), its type changed, enum values removed, a bound tightened (minimum up, maximum
  down, min_length up, max_length down), or its default removed so that it becomes required;
- a step removed that other steps need or read, or an output field removed that a step's Jinja reads
  (``steps.<id>.<field>``).

Not breaking, but said: the version (which should go up), steps added, removed or re-assigned (agent,
skill, route), instructions changed, defaults changed, the schedule and the trigger, the agents that come
and go (and, in ``baton diff``, the budgets that apply to them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from baton.spec.models import InputField, Workflow

# Tightening each bound refuses values the old one took: (field, "up" or "down" is tighter).
BOUNDS = (("minimum", "up"), ("maximum", "down"), ("min_length", "up"), ("max_length", "down"))


@dataclass
class Change:
    where: str  # inputs.<name>, steps.<id>, steps.<id>.output.<field>, schedule, version, ...
    what: str
    breaking: bool = False

    def line(self) -> str:
        return f"{'BREAKING ' if self.breaking else ''}{self.where}: {self.what}"


@dataclass
class Diff:
    old: Workflow
    new: Workflow
    changes: list[Change] = field(default_factory=list)
    agents_added: list[str] = field(default_factory=list)
    agents_removed: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    def document(self) -> dict[str, Any]:
        return {
            "workflow": self.new.workflow,
            "version": [self.old.version, self.new.version],
            "breaking": len(self.breaking),
            "changes": [c.__dict__ for c in self.changes],
            "agents_added": self.agents_added,
            "agents_removed": self.agents_removed,
        }


def diff(old: Workflow, new: Workflow) -> Diff:
    """Every change from ``old`` to ``new`` (two versions of one template), breaking ones marked."""
    result = Diff(old, new)
    changes = result.changes
    if old.workflow != new.workflow:
        changes.append(Change("workflow", f"renamed {old.workflow} -> {new.workflow}: a new DAG", True))
    if new.version <= old.version:
        changes.append(Change("version", f"{old.version} -> {new.version}: raise it for a changed template"))
    else:
        changes.append(Change("version", f"{old.version} -> {new.version}"))
    changes += _inputs(old.inputs, new.inputs)
    changes += _steps(old, new)
    if (old.schedule.cron, old.schedule.timezone) != (new.schedule.cron, new.schedule.timezone):
        changes.append(Change("schedule", f"{old.schedule.cron or 'none'} -> {new.schedule.cron or 'none'}"))
    if old.trigger != new.trigger:
        changes.append(Change("trigger", "changed" if old.trigger and new.trigger else "added or removed"))
    before, after = _agents(old), _agents(new)
    result.agents_added, result.agents_removed = sorted(after - before), sorted(before - after)
    return result


def _required(spec: InputField) -> bool:
    return spec.required and spec.default is None


def _inputs(old: dict[str, InputField], new: dict[str, InputField]) -> list[Change]:
    changes = []
    for name in sorted(old.keys() - new.keys()):
        changes.append(Change(f"inputs.{name}", "removed: a caller that passes it has it ignored", True))
    for name in sorted(new.keys() - old.keys()):
        if _required(new[name]):
            changes.append(
                Change(f"inputs.{name}", "added, required: a caller that does not pass it is refused", True)
            )
        else:
            changes.append(Change(f"inputs.{name}", f"added, optional (default {new[name].default!r})"))
    for name in sorted(old.keys() & new.keys()):
        changes += _input(f"inputs.{name}", old[name], new[name])
    return changes


def _input(where: str, old: InputField, new: InputField) -> list[Change]:
    changes = []
    if old.type != new.type:
        changes.append(Change(where, f"type {old.type} -> {new.type}: a caller's value may be refused", True))
    if new.enum is not None and (dropped := [v for v in (old.enum or []) if v not in new.enum]):
        changes.append(
            Change(where, f"enum values removed: {dropped!r}: a caller passing one is refused", True)
        )
    elif new.enum is not None and old.enum is None:
        changes.append(Change(where, f"now one of {new.enum!r}: a caller's other values are refused", True))
    for bound, tighter in BOUNDS:
        before, after = getattr(old, bound), getattr(new, bound)
        if after is not None and (before is None or (after > before if tighter == "up" else after < before)):
            changes.append(
                Change(where, f"{bound} {before} -> {after}: values the old one took are refused", True)
            )
    if _required(new) and not _required(old):
        changes.append(Change(where, "now required: a caller that does not pass it is refused", True))
    elif old.default != new.default:
        changes.append(Change(where, f"default {old.default!r} -> {new.default!r}"))
    return changes


# ``steps.<id>.<field>`` in a Jinja text: the output fields a step reads of another
_READ = re.compile(r"steps\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def _readers(workflow: Workflow) -> dict[tuple[str, str], list[str]]:
    """(step id, output field) -> the steps whose Jinja reads it."""
    found: dict[tuple[str, str], list[str]] = {}
    for step in workflow.steps:
        for _, text, _, _ in step.jinja_sources():
            for read in set(_READ.findall(text or "")):
                found.setdefault(read, []).append(step.id)
    return found


def _fields(step: Any) -> set[str] | None:
    output = step.output
    return set(output) if isinstance(output, dict) else None  # a named output model: not compared here


def _steps(old: Workflow, new: Workflow) -> list[Change]:
    changes = []
    before, after = {s.id: s for s in old.steps}, {s.id: s for s in new.steps}
    readers = _readers(new)
    for name in sorted(before.keys() - after.keys()):
        users = sorted(
            {s for (step, _), readers_of in readers.items() if step == name for s in readers_of}
            | {s.id for s in new.steps if name in s.upstream}
        )
        if users:
            changes.append(
                Change(f"steps.{name}", f"removed, but {', '.join(users)} still read or need it", True)
            )
        else:
            changes.append(Change(f"steps.{name}", "removed"))
    for name in sorted(after.keys() - before.keys()):
        changes.append(Change(f"steps.{name}", f"added ({_worker(after[name])})"))
    for name in [s.id for s in new.steps if s.id in before]:
        was, now = before[name], after[name]
        if _worker(was) != _worker(now):
            changes.append(Change(f"steps.{name}", f"{_worker(was)} -> {_worker(now)}"))
        if (was.instruction or "") != (now.instruction or ""):
            changes.append(Change(f"steps.{name}.instruction", "changed"))
        old_fields, new_fields = _fields(was), _fields(now)
        for gone in sorted((old_fields or set()) - (new_fields or set())) if new_fields is not None else []:
            users = sorted(set(readers.get((name, gone), [])))
            what = f"removed, but {', '.join(users)} read it" if users else "removed"
            changes.append(Change(f"steps.{name}.output.{gone}", what, bool(users)))
    return changes


def _worker(step: Any) -> str:
    if (agent := getattr(step, "agent", None)) is not None:
        return f"agent {getattr(agent, 'name', agent)}"
    if (skill := getattr(step, "skill", None)) is not None:
        return f"skill {getattr(skill, 'name', skill)}"
    if (route := getattr(step, "route", None)) is not None:
        return f"route {sorted(route.capabilities)}" + (" (learned)" if route.learn else "")
    return "a person"


def _agents(workflow: Workflow) -> set[str]:
    names = set()
    for step in workflow.steps:
        if (agent := getattr(step, "agent_name", None)) is not None:
            names.add(agent)
    return names
