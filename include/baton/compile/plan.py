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

    @property
    def task_id(self) -> str:
        return self.step.id

    @property
    def worker(self) -> str:
        return f"agent {self.agent.name}" if self.agent else f"skill {self.step.skill}"


@dataclass(frozen=True)
class WorkflowPlan:
    workflow: Workflow
    steps: tuple[StepPlan, ...]
    pools: dict[str, int] = field(default_factory=dict)


def _reads(step: Step) -> tuple[str, ...]:
    """The upstream steps whose outputs the instruction or the ``when`` condition reads."""
    read: set[str] = set()
    for source, expression in ((step.instruction, False), (step.when, True)):
        if source:
            read |= templating.references(source, expression=expression)[1]
    return tuple(sorted(read | set(step.needs)))


def step_reads(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Each step id -> the upstream steps whose outputs it reads (its needs, its Jinja)."""
    return {step.id: _reads(step) for step in workflow.steps}


def plan_workflow(
    workflow: Workflow, roster: Roster | None, reads: dict[str, tuple[str, ...]] | None = None
) -> WorkflowPlan:
    """Turn a checked workflow into a plan; the workflow must have passed ``load_workflow``.

    :param reads: ``step_reads(workflow)`` when already known (from the validation cache).
    """
    steps = []
    pools: dict[str, int] = {}
    for step in workflow.steps:
        agent = roster.get(step.agent) if roster is not None and step.agent else None
        pool = agent.pool if agent else DEFAULT_POOL
        if agent:
            pools[agent.pool] = agent.max_concurrency
        steps.append(
            StepPlan(
                step=step,
                agent=agent,
                upstream=tuple(step.needs),
                reads=tuple(reads[step.id]) if reads else _reads(step),
                pool=pool,
            )
        )
    return WorkflowPlan(workflow=workflow, steps=tuple(steps), pools=pools)


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
