"""Who does each step: agents and skills that exist, browser access and allowed hosts, routes some agent can
take, fan-outs over real lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import get_origin

from baton.egress.browser import Allowlist, display_host
from baton.registry import get_output_model, get_skill, output_model_names, skill_names
from baton.spec.checks.common import REGISTER_SKILL, Found, _suggest
from baton.spec.checks.egress import fixed_url
from baton.spec.models import AnyStep, RoutedStep, Workflow
from baton.spec.roster import Roster


def _agent_problem(name: str, roster: Roster | None, what: str) -> tuple[str, str] | None:
    """Why the roster cannot give agent ``name`` (``what``: "agent 'x'" in the message), or None."""
    if roster is None:
        return (
            f"cannot resolve {what}: the roster has errors",
            "fix dags/agents.yaml first (baton validate lists its errors)",
        )
    if name in roster.broken:
        return (
            f"{what} is broken in the roster ({roster.broken[name]})",
            "fix its entry in dags/agents.yaml (baton validate lists its errors)",
        )
    if roster.get(name) is None:
        return (
            f"unknown {what}",
            f"add it to dags/agents.yaml or use a roster name; {_suggest(name, roster.names)}",
        )
    return None


def _check_workers(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    skills = skill_names()
    for index, step in enumerate(workflow.steps):
        loc = ("steps", index)
        name = step.agent_name
        if name is not None and (found := _agent_problem(name, roster, f"agent '{name}'")) is not None:
            yield ((*loc, "agent"), *found)
        if (skill := step.skill_name) is not None and skill not in skills:
            yield (
                (*loc, "skill"),
                f"unknown skill '{skill}'",
                f"{REGISTER_SKILL}; {_suggest(skill, skills)}",
            )
        undo = step.compensate
        if undo is not None and undo.skill is not None and undo.skill not in skills:
            yield (
                (*loc, "compensate", "skill"),
                f"unknown skill '{undo.skill}' to compensate step '{step.id}'",
                f"{REGISTER_SKILL}; {_suggest(undo.skill, skills)}",
            )
        if undo is not None and undo.agent is not None and roster is not None:
            what = f"agent '{undo.agent}' to compensate step '{step.id}'"
            if (found := _agent_problem(undo.agent, roster, what)) is not None:
                yield ((*loc, "compensate", "agent"), *found)
        yield from _check_browser(step, index, roster)
        if isinstance(step.output, str) and get_output_model(step.output) is None:
            yield (
                (*loc, "output"),
                f"unknown output model '{step.output}'",
                f"declare fields instead, or use one of: {', '.join(output_model_names())}",
            )


def _check_browser(step: AnyStep, index: int, roster: Roster | None) -> Iterator[Found]:
    """A browser step is done by a named agent with browser access, once (not per for_each item), and
    a ``goto`` whose host is fixed (the whole URL, or its part before the first Jinja hole) must be on the
    agent's allowed hosts."""
    if not step.actions:
        return
    loc = ("steps", index, "browser")
    if step.for_each:
        yield (
            loc,
            "browser actions are performed by one named agent, once per run",
            "drive the browser in a step of its own, without for_each",
        )
        return
    agent = roster.get(step.agent_name) if roster is not None else None
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
    allowed = Allowlist(agent.browser.allow)
    for number, action in enumerate(step.actions):
        url = getattr(action, "url", None) if action.action == "goto" else None
        url = fixed_url(url) if url else None  # whole, or before its first Jinja hole once the host is fixed
        if url and not allowed.allows(url):
            never = allowed.why_not(url)  # an address never reached, even when listed
            yield (
                (*loc, number, "goto"),
                never
                or f"'{display_host(url)}' is not among the hosts agent '{agent.name}' may reach "
                f"({', '.join(agent.browser.allow)})",
                "go elsewhere: no entry of browser.allow can open it"
                if never
                else f"add the host to {agent.name}'s browser.allow in dags/agents.yaml, or go elsewhere",
            )


def _check_routes(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    if roster is None:
        return
    known = roster.capabilities
    for index, step in enumerate(workflow.steps):
        if not isinstance(step, RoutedStep):
            continue
        missing = False
        for position, capability in enumerate(step.route.capabilities):
            if capability not in known:
                missing = True
                yield (
                    ("steps", index, "route", "capabilities", position),
                    f"no agent in the roster has capability '{capability}'",
                    f"add it to an agent's capabilities in dags/agents.yaml; {_suggest(capability, known)}"
                    + (
                        f" (left out as broken: {', '.join(sorted(roster.broken))}; fix them first)"
                        if roster.broken
                        else ""
                    ),
                )
        if not missing and not roster.capable(step.route.capabilities):
            yield (
                ("steps", index, "route", "capabilities"),
                f"no single agent has all of {step.route.capabilities}",
                "route on fewer capabilities, or give one agent all of them in dags/agents.yaml",
            )


def list_fields(step: AnyStep, roster: Roster | None = None) -> list[str] | None:
    """The fields of a step's output that hold a list; None when the output is text.

    The output is the step's ``output``; without one, a skill's own output model (the step's skill,
    or its agent's).
    """
    output = step.output
    if output is None:
        agent = roster.get(step.agent_name) if roster is not None and step.agent_name else None
        skill = step.skill_name or (agent.skill if agent else None)
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


def _check_list(loc: tuple, name: str, field: str | None, fields: list[str] | None) -> Iterator[Found]:
    """The list a for_each iterates over is a list field of step ``name`` (``fields``: its list fields,
    None when it returns text)."""
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


def _check_variants(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    """An experiment changes an agent's instruction or the agent: on a step an agent or a route does,
    once per run (not per for_each item); an arm's agent on a named-agent step, from the roster."""
    for index, step in enumerate(workflow.steps):
        if step.variants is None:
            continue
        loc = ("steps", index, "variants")
        routed = getattr(step, "route", None) is not None
        if step.agent_name is None and not routed:
            yield (
                loc,
                "variants change what an agent is asked, or the agent",
                "name an agent or a route for the step",
            )
            continue
        if step.for_each:
            yield (
                loc,
                "variants assign a run to an arm; a for_each step's items are one run's",
                "experiment on a step without for_each",
            )
        for arm, variant in step.variants.arms.items():
            if variant.agent is None:
                continue
            where = (*loc, "arms", arm, "agent")
            if routed:
                yield (
                    where,
                    "a routed step's agent is chosen by its route",
                    "change the instruction here, or name an agent for the step",
                )
            elif (
                roster is not None
                and (found := _agent_problem(variant.agent, roster, f"agent '{variant.agent}'")) is not None
            ):
                yield (where, *found)


def _check_fan_outs(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    steps = {step.id: step for step in workflow.steps}
    for index, step in enumerate(workflow.steps):
        if step.for_each is None:
            continue
        name, field = step.source
        loc = ("steps", index, "for_each")
        if (route := getattr(step, "route", None)) is not None and route.learn:
            yield (
                ("steps", index, "route", "learn"),
                "learned routing chooses the agent of a step's call; a for_each step's items are spread over "
                "the capable agents by load",
                "remove learn here, or learn on a step without for_each",
            )
        if step.reviewed:
            yield (
                ("steps", index, "escalate"),
                "a for_each step cannot be reviewed item by item (escalate: human)",
                "put escalate: human on the step that joins its results, or use for_each.partial_failure: "
                "escalate",
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
        yield from _check_list(loc, name, field, list_fields(source, roster))
        agent = roster.get(step.agent_name) if step.agent_name and roster is not None else None
        concurrency = step.for_each.concurrency
        if concurrency and agent is not None and concurrency > agent.max_concurrency:
            yield (
                ("steps", index, "for_each", "concurrency"),
                f"concurrency {concurrency} exceeds agent '{agent.name}' max_concurrency "
                f"{agent.max_concurrency} (the size of its pool)",
                f"lower it to {agent.max_concurrency}, or raise the agent's max_concurrency",
            )
