"""Checks a valid-shaped template against everything pydantic cannot see: graph, names, Jinja, cron."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from baton import templating
from baton.spec.models import PRESETS, Step, Workflow
from baton.spec.roster import Roster

Found = tuple[tuple[str | int, ...], str, str]  # (key path, message, fix)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}known: {', '.join(known) if known else '(none)'}"


def check_workflow(workflow: Workflow, roster: Roster | None, path: Path) -> list[Found]:
    """Every problem of ``workflow`` that its pydantic model cannot see."""
    return [
        *_check_name(workflow, path),
        *_check_steps(workflow),
        *_check_workers(workflow, roster),
        *_check_routes(workflow, roster),
        *_check_fan_outs(workflow, roster),
        *_check_templates(workflow),
        *_check_schedule(workflow),
        *_check_inputs(workflow),
    ]


def _check_name(workflow: Workflow, path: Path) -> Iterator[Found]:
    if path.suffix in (".yaml", ".yml") and workflow.workflow != path.stem:
        yield (
            ("workflow",),
            f"workflow id '{workflow.workflow}' differs from the file name '{path.name}'",
            f"rename the file to {workflow.workflow}.yaml or set workflow: {path.stem}",
        )


def _check_steps(workflow: Workflow) -> Iterator[Found]:
    ids = [step.id for step in workflow.steps]
    for index, step in enumerate(workflow.steps):
        if ids.index(step.id) != index:
            yield (
                ("steps", index, "id"),
                f"duplicate step id '{step.id}' (first at steps[{ids.index(step.id)}])",
                "give every step its own id",
            )
        for position, need in enumerate(step.needs):
            if need == step.id:
                yield (
                    ("steps", index, "needs", position),
                    f"step '{step.id}' needs itself",
                    "remove it from needs",
                )
            elif need not in ids:
                yield (
                    ("steps", index, "needs", position),
                    f"needs unknown step '{need}'",
                    _suggest(need, ids),
                )
    if cycle := find_cycle({step.id: [n for n in step.upstream if n in ids] for step in workflow.steps}):
        first = ids.index(cycle[0])
        yield (
            ("steps", first, "needs"),
            f"dependency cycle: {' -> '.join(cycle)}",
            "remove one of these needs so the steps form a chain",
        )


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``graph`` (node -> the nodes it needs) as a closed path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for need in graph.get(node, []):
            if need == node:
                continue  # reported as "needs itself"
            if state.get(need) == 1:
                return [*stack[stack.index(need) :], need]
            if need not in state and (cycle := visit(need)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def ancestors(workflow: Workflow) -> dict[str, set[str]]:
    """Each step id -> every step upstream of it (transitively); assumes no cycle."""
    needs = {step.id: set(step.upstream) for step in workflow.steps}
    result: dict[str, set[str]] = {}

    def up(step_id: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if step_id not in result:
            direct = {n for n in needs.get(step_id, ()) if n not in seen and n in needs}
            result[step_id] = direct.union(*(up(n, seen | {step_id}) for n in direct))
        return result[step_id]

    for step_id in needs:
        up(step_id)
    return result


def _check_workers(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    from baton.skills import get_output_model, output_model_names, skill_names

    for index, step in enumerate(workflow.steps):
        if step.agent is not None:
            if roster is None:
                yield (
                    ("steps", index, "agent"),
                    f"cannot resolve agent '{step.agent}': the roster has errors",
                    "fix dags/agents.yaml first (baton validate lists its errors)",
                )
            elif roster.get(step.agent) is None:
                yield (
                    ("steps", index, "agent"),
                    f"unknown agent '{step.agent}'",
                    f"add it to dags/agents.yaml or use a roster name; {_suggest(step.agent, roster.names)}",
                )
        if step.skill is not None and step.skill not in skill_names():
            yield (
                ("steps", index, "skill"),
                f"unknown skill '{step.skill}'",
                f"register it in baton.skills; {_suggest(step.skill, skill_names())}",
            )
        undo = step.compensate
        if undo is not None and undo.skill is not None and undo.skill not in skill_names():
            yield (
                ("steps", index, "compensate", "skill"),
                f"unknown skill '{undo.skill}' to compensate step '{step.id}'",
                f"register it in baton.skills; {_suggest(undo.skill, skill_names())}",
            )
        if (
            undo is not None
            and undo.agent is not None
            and roster is not None
            and roster.get(undo.agent) is None
        ):
            yield (
                ("steps", index, "compensate", "agent"),
                f"unknown agent '{undo.agent}' to compensate step '{step.id}'",
                f"add it to dags/agents.yaml or use a roster name; {_suggest(undo.agent, roster.names)}",
            )
        if step.with_ and step.skill is None:
            yield (
                ("steps", index, "with"),
                "'with' passes arguments to a skill, and this step runs no skill",
                "name a skill with 'skill:', or put the values in the instruction",
            )
        yield from _check_browser(step, index, roster)
        if isinstance(step.output, str) and get_output_model(step.output) is None:
            yield (
                ("steps", index, "output"),
                f"unknown output model '{step.output}'",
                f"declare fields instead, or use one of: {', '.join(output_model_names())}",
            )


def _check_browser(step: Step, index: int, roster: Roster | None) -> Iterator[Found]:
    """A browser step is done by a named agent with browser access, once (not per for_each item), and
    a ``goto`` whose URL is fixed must be on the agent's allowed hosts."""
    if not step.browser:
        return
    loc = ("steps", index, "browser")
    if step.agent is None or step.for_each:
        yield (
            loc,
            "browser actions are performed by one named agent, once per run",
            "name an agent with browser access under 'agent:' (not a skill, a route or a for_each)",
        )
        return
    agent = roster.get(step.agent) if roster is not None else None
    if agent is None:
        return  # the unknown agent is reported on its own
    if agent.browser is None:
        yield (
            loc,
            f"agent '{agent.name}' has no browser access",
            f"give '{agent.name}' `browser: {{allow: [<hosts>]}}` in dags/agents.yaml, or name an agent "
            "that has it",
        )
        return
    from baton.browser.allowlist import Allowlist, display_host

    allowed = Allowlist(agent.browser.allow)
    for number, action in enumerate(step.browser):
        url = getattr(action, "url", None) if action.action == "goto" else None
        if url and "{" not in url and not allowed.allows(url):
            yield (
                (*loc, number, "goto"),
                f"'{display_host(url)}' is not among the hosts agent '{agent.name}' may reach "
                f"({', '.join(agent.browser.allow)})",
                f"add the host to {agent.name}'s browser.allow in dags/agents.yaml, or go elsewhere",
            )


def _check_routes(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    if roster is None:
        return
    known = roster.capabilities
    for index, step in enumerate(workflow.steps):
        if step.route is None:
            continue
        missing = False
        for position, capability in enumerate(step.route.capabilities):
            if capability not in known:
                missing = True
                yield (
                    ("steps", index, "route", "capabilities", position),
                    f"no agent in the roster has capability '{capability}'",
                    f"add it to an agent's capabilities in dags/agents.yaml; {_suggest(capability, known)}",
                )
        if not missing and not roster.capable(step.route.capabilities):
            yield (
                ("steps", index, "route", "capabilities"),
                f"no single agent has all of {step.route.capabilities}",
                "route on fewer capabilities, or give one agent all of them in dags/agents.yaml",
            )


def list_fields(step: Step, roster: Roster | None = None) -> list[str] | None:
    """The fields of a step's output that hold a list; None when the output is text.

    The output is the step's ``output``; without one, a skill's own output model (the step's skill,
    or its agent's).
    """
    from typing import get_origin

    from baton.skills import get_output_model, get_skill, skill_names

    output = step.output
    if output is None:
        agent = roster.get(step.agent) if roster is not None and step.agent else None
        skill = step.skill or (agent.skill if agent else None)
        model = get_skill(skill).output if skill in skill_names() else None
        if model is None:
            return None
    elif isinstance(output, dict):
        return [name for name, field in output.items() if field.type == "array"]
    else:
        model = get_output_model(str(output))
    if model is None:
        return []
    return [
        name
        for name, info in model.model_fields.items()
        if get_origin(info.annotation) in (list, tuple) or info.annotation in (list, tuple)
    ]


def _check_fan_outs(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    steps = {step.id: step for step in workflow.steps}
    for index, step in enumerate(workflow.steps):
        if step.source is None:
            for key in ("concurrency", "batch_size"):
                if getattr(step, key) is not None:
                    yield (
                        ("steps", index, key),
                        f"'{key}' applies only to a step with for_each",
                        f"remove it, or add for_each: <step> to run '{step.id}' once per item",
                    )
            if step.partial_failure != "fail":
                yield (
                    ("steps", index, "partial_failure"),
                    "'partial_failure' applies only to a step with for_each",
                    "remove it, or add for_each: <step>",
                )
            continue
        name, field = step.source
        loc = ("steps", index, "for_each")
        if step.escalate is not None and step.escalate.when == "always":
            yield (
                ("steps", index, "escalate"),
                "a for_each step cannot be reviewed item by item (escalate: human)",
                "put escalate: human on the step that joins its results, or use partial_failure: escalate",
            )
        source = steps.get(name)
        if source is None or name == step.id:
            yield (
                loc,
                f"for_each over unknown step '{name}'",
                _suggest(name, sorted(set(steps) - {step.id})),
            )
            continue
        if source.for_each:
            yield (
                loc,
                f"for_each over '{name}', which is itself a for_each",
                f"fan out over the step that produced the list '{name}' iterated over, or join first",
            )
            continue
        fields = list_fields(source, roster)
        if fields is None:
            yield (
                loc,
                f"step '{name}' returns text, not a list",
                f"declare an array field in the output of '{name}' (e.g. output: Subtasks)",
            )
        elif field is None and len(fields) != 1:
            yield (
                loc,
                f"step '{name}' returns "
                + (f"several lists ({', '.join(fields)})" if fields else "no list field"),
                f"name the field: for_each: {name}.<field>"
                if fields
                else f"declare an array field in the output of '{name}' (e.g. output: Subtasks)",
            )
        elif field is not None and field not in fields:
            yield (
                loc,
                f"field '{field}' of step '{name}' is not a list",
                f"use one of its array fields: {', '.join(fields) or '(none)'}",
            )
        agent = roster.get(step.agent) if step.agent and roster is not None else None
        if step.concurrency and agent is not None and step.concurrency > agent.max_concurrency:
            yield (
                ("steps", index, "concurrency"),
                f"concurrency {step.concurrency} exceeds agent '{agent.name}' max_concurrency "
                f"{agent.max_concurrency} (the size of its pool)",
                f"lower it to {agent.max_concurrency}, or raise the agent's max_concurrency",
            )


def _check_templates(workflow: Workflow) -> Iterator[Found]:
    upstream = ancestors(workflow)
    ids = {step.id for step in workflow.steps}
    declared = sorted(workflow.context)
    for index, step in enumerate(workflow.steps):
        for key in step.writes:
            if key not in workflow.context:
                yield (
                    ("steps", index, "writes", key),
                    f"unknown context key '{key}'",
                    f"declare it under context: (with a strategy); {_suggest(key, declared)}",
                )
        for path, source, expression, extra in [*step.jinja_sources(), *step.compensation_sources()]:
            loc = ("steps", index, *path)
            if not source:
                continue
            try:
                unknown, steps_read, inputs_read = templating.references(source, expression=expression)
                context_read = templating.context_reads(source, expression=expression)
            except jinja2.TemplateSyntaxError as error:
                yield (loc, f"Jinja syntax error: {error.message}", "fix the {{ ... }} expression")
                continue
            if "trigger" in unknown and workflow.trigger is None:
                yield (
                    loc,
                    "reads 'trigger', but the workflow has no trigger (its runs start by hand or on schedule)",
                    "add a trigger: (a sensor, an asset or a queue), or read inputs instead",
                )
            for name in sorted(unknown - extra - {"trigger"}):
                yield (
                    loc,
                    f"unknown name '{name}' in Jinja",
                    "use inputs.<name>, steps.<step id>.<field>, context.<key> or run.<id|logical_date|ds>"
                    + (f", or {' / '.join(sorted(extra))}" if extra else ""),
                )
            if path[0] == "compensate" and (steps_read or context_read):
                yield (
                    loc,
                    "a compensation reads the step's own output, not "
                    + ", ".join(
                        [
                            *(f"steps.{n}" for n in sorted(steps_read)),
                            *(f"context.{n}" for n in sorted(context_read)),
                        ]
                    ),
                    "use output.<field> (and item / index for a for_each step), inputs or run",
                )
                continue
            for name in sorted(steps_read):
                if name not in ids:
                    yield (loc, f"references unknown step '{name}'", _suggest(name, sorted(ids)))
                elif name not in upstream.get(step.id, set()):
                    yield (
                        loc,
                        f"references step '{name}', which is not upstream of '{step.id}'",
                        f"add '{name}' to needs of '{step.id}'",
                    )
            for name in sorted(inputs_read - set(workflow.inputs)):
                yield (loc, f"references unknown input '{name}'", _suggest(name, sorted(workflow.inputs)))
            for name in sorted(context_read - set(workflow.context)):
                yield (
                    loc,
                    f"reads unknown context key '{name}'",
                    f"declare it under context:; {_suggest(name, declared)}",
                )


def _check_schedule(workflow: Workflow) -> Iterator[Found]:
    cron = workflow.schedule.cron
    if cron is not None and not cron.startswith("@"):
        from croniter import croniter

        if not croniter.is_valid(cron):
            yield (
                ("schedule",),
                f"invalid cron expression '{cron}'",
                "use five fields 'minute hour day month weekday' (e.g. '0 9 * * *'), a preset "
                f"({', '.join(PRESETS)}) or none",
            )
    elif cron is not None and cron not in PRESETS:
        yield (("schedule",), f"unknown schedule preset '{cron}'", f"use one of {', '.join(PRESETS)}")
    try:
        ZoneInfo(workflow.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield (
            ("schedule", "timezone"),
            f"unknown timezone '{workflow.schedule.timezone}'",
            "use an IANA name such as 'UTC' or 'Europe/Paris'",
        )


def _check_inputs(workflow: Workflow) -> Iterator[Found]:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    for name, field in workflow.inputs.items():
        loc = ("inputs", name, "default")
        if field.default is None:
            if workflow.schedule.cron is not None and field.required:
                yield (
                    loc,
                    f"input '{name}' has no default, but scheduled runs get no conf",
                    "give it a default, or make the workflow unscheduled",
                )
            continue
        # What jsonschema.validate does, minus re-checking the schema against its metaschema on every
        # call: InputField builds it from typed fields only (a JSON type, an enum list, numbers, and
        # lengths >= 0), so it is a valid schema by construction.
        schema = field.json_schema()
        error = best_match(validator_for(schema)(schema).iter_errors(field.default))
        if error is not None:
            yield (
                loc,
                f"default {field.default!r} does not fit the input: {error.message}",
                f"use a default that is a valid {field.type}"
                + (f" among {field.enum}" if field.enum else ""),
            )
