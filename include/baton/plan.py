"""Spec -> plan: the pure, Airflow-free description of the tasks a workflow compiles to.

A :class:`CompiledStep` is everything one step's task needs at run time, resolved once from the template
and the roster: the step as written, its agent or candidates, what it reads, its fan-out, its pool. It is
frozen and passed whole to the operator and from there to every runtime part (the call, the fan-out, the
escalation, the saga), so a step's options are defined once, in :mod:`baton.spec.step`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from baton import templating
from baton.spec.checks import list_fields
from baton.spec.models import AnyStep, Workflow
from baton.spec.roster import Agent, Roster
from baton.spec.step import RoutedStep, SkillStep, Step

DEFAULT_POOL = "default_pool"


class FanOutPlan(BaseModel):
    """A for_each step's list (``source``.``field``) and how its items run."""

    model_config = ConfigDict(frozen=True)

    source: str
    field: str
    concurrency: int  # calls at once inside one task
    batch_size: int | None
    partial_failure: str
    dedupe: bool = False  # items whose instruction renders the same make one call
    items_per_call: int | None = None  # small items answered N to one model call


class CompiledStep(BaseModel):
    """One step of one workflow, ready to run: the operator's only argument besides Airflow's own."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    template_version: int
    spec: Step
    agent: Agent | None = None  # the agent the template names
    candidates: tuple[Agent, ...] = ()  # a routed step's (a for_each route: every agent of the roster)
    reads: tuple[str, ...] = ()  # upstream steps whose outputs its Jinja reads, and its needs
    fanned_reads: tuple[str, ...] = ()  # those of them that are for_each steps (their batches are joined)
    fan_out: FanOutPlan | None = None
    context_keys: dict[str, str] = {}  # the workflow's shared-context keys -> conflict strategies
    trigger_kind: str | None = None  # sensor | asset | queue: what ``trigger`` holds in the scope
    agent_timeout: float | None = None  # seconds one agent call may take (the step's, or the default)
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    variant_agents: dict[str, Agent] = {}  # an experiment's arms that name another agent -> that agent
    group: str = ""  # the task group of a version being rolled out (``v2``): its tasks are ``v2.<step>``
    input_defaults: dict[str, Any] = {}  # a version being rolled out: its inputs' defaults (the DAG's
    # params are the current version's; an input only the new version has takes its default)
    # the template's digest when the workflow has an evaluation dataset: an arm of the step's variants other
    # than the control gets runs once it passed the dataset (baton eval --variant STEP:ARM --record)
    evaluated: str | None = None
    judge: Agent | None = (
        None  # the roster's agent that reads the rubrics of the step's live checks (evaluate)
    )

    @property
    def task_id(self) -> str:
        return self.task_of(self.spec.id)

    def task_of(self, step_id: str) -> str:
        """The task id of the step ``step_id`` of the same version."""
        return f"{self.group}.{step_id}" if self.group else step_id

    @property
    def skill(self) -> str | None:
        """The skill that does the step: the step's own, or its agent's."""
        return self.spec.skill_name or (self.agent.skill if self.agent else None)

    @property
    def routed(self) -> bool:
        return isinstance(self.spec, RoutedStep)

    @property
    def output_spec(self) -> dict[str, Any] | str | None:
        """The step's output: a registered model's name, its declared fields (as JSON), or None (text)."""
        output = self.spec.output
        if isinstance(output, dict):
            return {name: spec.model_dump(exclude_defaults=True) for name, spec in output.items()}
        return output

    @property
    def who(self) -> str:
        """Who does the step, in words (``baton show``, the DAG's doc)."""
        step = self.spec
        if self.agent:
            who = f"agent {self.agent.name}"
        elif isinstance(step, RoutedStep):
            wanted = ", ".join(step.route.capabilities) or "each item's capabilities"
            who = f"route by {wanted} (prefer {step.route.prefer})"
        elif isinstance(step, SkillStep):
            who = f"skill {step.skill}"
        else:
            who = "a person"
        if step.actions:
            who += f", {len(step.actions)} browser actions"
        if self.fan_out:
            who += f", for each of {self.fan_out.source}.{self.fan_out.field}"
        if step.escalate:
            who += ", reviewed by a person" if step.reviewed else ", escalates to a person"
        return who

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(self.spec.upstream)


class SagaPlan(BaseModel):
    """What a workflow's saga needs: its steps that declare ``compensate``, and the agents that do it."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    template_version: int | None = None
    steps: dict[str, CompiledStep] = {}  # step id -> the compiled step (its ``spec.compensate``)
    agents: dict[str, Agent] = {}  # roster name -> agent, for the compensations an agent does


@dataclass(frozen=True)
class WorkflowPlan:
    workflow: Workflow
    steps: tuple[CompiledStep, ...]
    pools: dict[str, int] = field(default_factory=dict)
    roster: tuple[Agent, ...] = ()

    def saga(self) -> SagaPlan:
        """The saga of this workflow (its ``steps`` empty when no step declares ``compensate``)."""
        steps = {s.task_id: s for s in self.steps if s.spec.compensate is not None}
        names = {s.spec.compensate.agent for s in steps.values()}
        return SagaPlan(
            workflow=self.workflow.workflow,
            template_version=self.workflow.version,
            steps=steps,
            agents={a.name: a for a in self.roster if a.name in names},
        )


def _reads(step: AnyStep) -> tuple[str, ...]:
    """The upstream steps whose outputs the step's Jinja (instruction, ``when``, ``writes``, ``with``) reads."""
    read: set[str] = set()
    for _, source, expression, _ in step.jinja_sources():
        if source:
            read |= templating.references(source, expression=expression)[1]
    return tuple(sorted(read | set(step.upstream)))


def step_reads(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Each step id -> the upstream steps whose outputs it reads (its needs, its Jinja)."""
    return {step.id: _reads(step) for step in workflow.steps}


def _fan_out(
    step: AnyStep, by_id: dict[str, AnyStep], roster: Roster | None, agent: Agent | None
) -> FanOutPlan:
    name, field_name = step.for_each.source
    field_name = field_name or (list_fields(by_id[name], roster) or ["items"])[0]
    return FanOutPlan(
        source=name,
        field=field_name,
        concurrency=step.for_each.concurrency or (agent.max_concurrency if agent else 4),
        batch_size=step.for_each.batch_size,
        partial_failure=step.for_each.partial_failure,
        dedupe=step.for_each.dedupe,
        items_per_call=step.for_each.items_per_call,
    )


def _variant_agents(step: AnyStep, roster: Roster | None) -> dict[str, Agent]:
    arms = step.variants.arms if step.variants is not None and roster is not None else {}
    return {arm: found for arm, v in arms.items() if v.agent and (found := roster.get(v.agent)) is not None}


def _candidates(step: AnyStep, roster: Roster | None) -> tuple[Agent, ...]:
    """The agents a routed step may go to: its capable ones (a for_each route: every agent of the roster)."""
    if not isinstance(step, RoutedStep) or roster is None:
        return ()
    return tuple(roster.agents) if step.for_each else tuple(roster.capable(step.route.capabilities))


def _judge(step: AnyStep, roster: Roster | None) -> Agent | None:
    """The roster's agent that reads the rubrics of the step's live checks (``evaluate.judge``), or None."""
    name = step.evaluate.judge if step.evaluate is not None else None
    return roster.get(name) if roster is not None and name else None


def _trigger_kind(workflow: Workflow) -> str | None:
    """What ``trigger`` holds in a step's scope: sensor, asset or queue (None: no trigger)."""
    trigger = workflow.trigger
    return None if trigger is None else "sensor" if trigger.sensor else "asset" if trigger.asset else "queue"


def plan_workflow(
    workflow: Workflow,
    roster: Roster | None,
    reads: dict[str, tuple[str, ...]] | None = None,
    group: str = "",
) -> WorkflowPlan:
    """Turn a checked workflow into a plan; the workflow must have passed ``load_workflow``.

    :param reads: ``step_reads(workflow)`` when already known (from the validation cache).
    :param group: the task group of a version being rolled out beside the current one (``v2``).
    """
    by_id = {step.id: step for step in workflow.steps}
    agents = tuple(roster.agents) if roster is not None else ()
    kind = _trigger_kind(workflow)
    reads = reads or step_reads(workflow)
    fanned = {step.id for step in workflow.steps if step.for_each}
    context_keys = {key: spec.strategy for key, spec in workflow.context.items()}
    steps, pools = [], {}
    defaults = {n: f.default for n, f in workflow.inputs.items() if f.default is not None} if group else {}
    for step in workflow.steps:
        agent = roster.get(step.agent_name) if roster is not None and step.agent_name else None
        if agent:
            pools[agent.pool] = agent.max_concurrency
        fan_out = _fan_out(step, by_id, roster, agent) if step.for_each else None
        timeout = step.agent_timeout or workflow.defaults.agent_timeout
        steps.append(
            CompiledStep(
                workflow=workflow.workflow,
                template_version=workflow.version,
                spec=step,
                agent=agent,
                candidates=_candidates(step, roster),
                reads=tuple(reads[step.id]),
                fanned_reads=tuple(sorted(fanned & set(reads[step.id]))),
                fan_out=fan_out,
                context_keys=context_keys,
                trigger_kind=kind,
                agent_timeout=timeout.total_seconds() if timeout is not None else None,
                pool=agent.pool if agent else DEFAULT_POOL,
                # a batch's concurrent calls each count against the agent's pool
                pool_slots=min(fan_out.concurrency, agent.max_concurrency) if agent and fan_out else 1,
                variant_agents=_variant_agents(step, roster),
                judge=_judge(step, roster),
                group=group,
                input_defaults=defaults,
            )
        )
    return WorkflowPlan(workflow=workflow, steps=tuple(steps), pools=pools, roster=agents)


def describe(plan: WorkflowPlan) -> list[dict[str, Any]]:
    """A row per task, for ``baton show``: the steps, and the saga's ``_compensate`` task when a step
    declares ``compensate``."""
    rows = [
        {
            "task": s.task_id,
            "runs": s.who,
            "needs": list(s.upstream),
            "pool": s.pool,
            "when": s.spec.when or "",
            "output": sorted(s.spec.output) if isinstance(s.spec.output, dict) else s.spec.output or "text",
        }
        for s in plan.steps
    ]
    saga = plan.saga()
    if saga.steps:
        rows.append(
            {
                "task": "_compensate",
                "runs": "the saga: undoes " + ", ".join(saga.steps) + " (newest first) when a step failed",
                "needs": [s.task_id for s in plan.steps],
                "pool": DEFAULT_POOL,
                "when": "all done, a step failed",
                "output": "-",
            }
        )
    return rows


def connections(plan: WorkflowPlan) -> list[str]:
    """How the workflow talks to other workflows and between its steps, for ``baton show``: what starts
    it, the assets its steps emit, and its shared-context keys with the steps that write them."""
    workflow, lines = plan.workflow, []
    trigger = workflow.trigger
    if trigger is not None and trigger.sensor is not None:
        lines.append(f"started by: sensor {trigger.sensor.kind} (its DAG {workflow.workflow}__sensor)")
    elif trigger is not None and trigger.asset:
        lines.append(f"started by: asset(s) {', '.join(trigger.asset)}")
    elif trigger is not None and trigger.queue is not None:
        lines.append(f"started by: messages on {trigger.queue.redis_channel}")
    for step in plan.steps:
        for emit in step.spec.emits:
            lines.append(f"emits: asset {emit.asset} (step {step.task_id})")
    for key, context in workflow.context.items():
        writers = [s.task_id for s in plan.steps if key in s.spec.writes]
        lines.append(f"context: {key} ({context.strategy}), written by {', '.join(writers) or 'no step'}")
    return lines
