"""Spec -> plan: the pure, Airflow-free description of the tasks a workflow compiles to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton import templating
from baton.spec.models import Step, Workflow
from baton.spec.roster import Agent, Roster

DEFAULT_POOL = "default_pool"


@dataclass(frozen=True)
class StepPlan:
    """One Airflow task: what it runs, what it waits for, which pool caps it."""

    step: Step
    agent: Agent | None
    upstream: tuple[str, ...]
    reads: tuple[str, ...]
    pool: str
    pool_slots: int = 1
    candidates: tuple[Agent, ...] = ()  # a routed step: the agents it may go to
    fan_out: dict[str, str] | None = None  # for_each: {"source": step, "field": its list field}

    @property
    def task_id(self) -> str:
        return self.step.id

    @property
    def worker(self) -> str:
        step = self.step
        if self.agent:
            worker = f"agent {self.agent.name}"
        elif step.route:
            wanted = ", ".join(step.route.capabilities) or "each item's capabilities"
            worker = f"route by {wanted} (prefer {step.route.prefer})"
        elif step.skill:
            worker = f"skill {step.skill}"
        else:
            worker = "a person"
        if step.browser:
            worker += f", {len(step.browser)} browser actions"
        if step.for_each:
            worker += (
                f", for each of {self.fan_out['source']}.{self.fan_out['field']}" if self.fan_out else ""
            )
        if step.escalate:
            worker += (
                ", reviewed by a person" if step.escalate.when == "always" else ", escalates to a person"
            )
        return worker


@dataclass(frozen=True)
class WorkflowPlan:
    workflow: Workflow
    steps: tuple[StepPlan, ...]
    pools: dict[str, int] = field(default_factory=dict)
    roster: tuple[Agent, ...] = ()


def _reads(step: Step) -> tuple[str, ...]:
    """The upstream steps whose outputs the step's Jinja (instruction, ``when``, ``writes``, ``with``) reads."""
    read: set[str] = set()
    for _, source, expression, _ in step.jinja_sources():
        if source:
            read |= templating.references(source, expression=expression)[1]
    return tuple(sorted(read | set(step.upstream)))


def step_reads(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Each step id -> the upstream steps whose outputs it reads (its needs, its Jinja)."""
    return {step.id: _reads(step) for step in workflow.steps}


def plan_workflow(
    workflow: Workflow, roster: Roster | None, reads: dict[str, tuple[str, ...]] | None = None
) -> WorkflowPlan:
    """Turn a checked workflow into a plan; the workflow must have passed ``load_workflow``.

    :param reads: ``step_reads(workflow)`` when already known (from the validation cache).
    """
    from baton.spec.checks import list_fields

    by_id = {step.id: step for step in workflow.steps}
    sources: dict[str, dict[str, str]] = {}
    for step in workflow.steps:
        if step.source:
            name, field_name = step.source
            field_name = field_name or (list_fields(by_id[name], roster) or ["items"])[0]
            sources[step.id] = {"source": name, "field": field_name}
    steps = []
    pools: dict[str, int] = {}
    for step in workflow.steps:
        agent = roster.get(step.agent) if roster is not None and step.agent else None
        pool = agent.pool if agent else DEFAULT_POOL
        if agent:
            pools[agent.pool] = agent.max_concurrency
        candidates = (
            tuple(roster.capable(step.route.capabilities)) if roster is not None and step.route else ()
        )
        slots = 1
        if agent and step.for_each:  # a batch's concurrent calls each count against the agent's pool
            slots = min(step.concurrency or agent.max_concurrency, agent.max_concurrency)
        steps.append(
            StepPlan(
                step=step,
                agent=agent,
                upstream=tuple(step.upstream),
                reads=tuple(reads[step.id]) if reads else _reads(step),
                pool=pool,
                pool_slots=slots,
                candidates=candidates,
                fan_out=sources.get(step.id),
            )
        )
    agents = tuple(roster.agents) if roster is not None else ()
    return WorkflowPlan(workflow=workflow, steps=tuple(steps), pools=pools, roster=agents)


def describe(plan: WorkflowPlan) -> list[dict[str, Any]]:
    """A row per task, for ``baton show``."""
    return [
        {
            "task": s.task_id,
            "runs": s.worker,
            "needs": list(s.upstream),
            "pool": s.pool,
            "when": s.step.when or "",
            "output": sorted(s.step.output) if isinstance(s.step.output, dict) else s.step.output or "text",
        }
        for s in plan.steps
    ]
