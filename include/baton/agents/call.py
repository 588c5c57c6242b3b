"""One call of a step's worker: render the instruction, then its skill, its agent's browser actions or its
agent's model, inside the step's effects scope and within its ``agent_timeout``."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from baton import effects, templating
from baton.agents.llm import run_llm_step
from baton.agents.skills import run_skill
from baton.agents.timeout import call_with_timeout
from baton.browser.artifacts import Artifacts
from baton.browser.runner import run_actions
from baton.errors import AgentError
from baton.extensions import load
from baton.plan import CompiledStep
from baton.spec.roster import Agent

# Hooks an extension (BATON_EXTENSIONS) may add: each runs right after a step's call returned, inside the
# step's effects scope (``baton.effects.current()``), and may fail the try (the development tools' fault
# injection fails tries on purpose after their side effects are done: devtools/faults.py).
AFTER_CALL: list[Callable[[], None]] = []


def call_step(
    step: CompiledStep,
    agent: Agent | None,
    scope: dict[str, Any],
    context: Any,
    recorder: Any,
    log: logging.Logger | logging.LoggerAdapter,
    guard: Any = None,
) -> dict[str, Any]:
    """The step's work, once, by ``agent`` (None: the step's own skill). Logs the instruction's length and
    hash, never its text. ``guard``: the budgets a model call reserves in (:mod:`baton.budgets`)."""
    load()  # the extensions' hooks register when their module is imported
    prompt = templating.render(step.spec.instruction, scope)
    who = f"agent {agent.name}" if agent else f"skill {step.skill}"
    log.info(
        "Step %s (%s): instruction of %d chars, sha256 %s; upstream outputs read: %s",
        step.task_id,
        who,
        len(prompt),
        hashlib.sha256(prompt.encode()).hexdigest()[:16],
        ", ".join(step.reads) or "none",
    )
    ti = context["ti"]
    with effects.scope(
        recorder.store,
        run_id=ti.run_id,
        workflow=step.workflow,
        step=step.task_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
        template_version=step.template_version,
    ):
        output = call_with_timeout(
            lambda: _work(step, agent, prompt, scope, context, recorder, guard, log),
            step.agent_timeout,
            f"{who} on step '{step.task_id}'",
        )
        for hook in AFTER_CALL:
            hook()
    log.info(
        "Step %s output: keys %s, %d bytes",
        step.task_id,
        sorted(output),
        len(json.dumps(output, default=str)),
    )
    return output


def _work(
    step: CompiledStep,
    agent: Agent | None,
    prompt: str,
    scope: dict[str, Any],
    context: Any,
    recorder: Any,
    guard: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    skill = step.spec.skill_name or (agent.skill if agent else None)
    if step.spec.actions and agent is not None:
        return browse_step(step, agent, scope, context, recorder)
    if skill:
        return run_skill(
            skill,
            workflow=step.workflow,
            step_id=step.task_id,
            output_spec=step.output_spec,
            instruction=prompt,
            scope=scope,
            with_=step.spec.arguments,
        )
    if agent is None:
        raise AgentError(f"Step '{step.task_id}' has no agent or skill to do it")
    return run_llm_step(step, agent, prompt, context, recorder, guard, log)


def browse_step(step: CompiledStep, agent: Agent, scope: dict[str, Any], context: Any, recorder: Any) -> dict:
    """The step's declared browser actions, performed by ``agent`` within its allowed hosts."""
    if agent.browser is None:
        raise AgentError(
            f"Step '{step.task_id}' declares browser actions, but agent '{agent.name}' has no browser access; "
            "give it `browser: {allow: [<hosts>]}` in the roster, or name an agent that has it"
        )
    numbers = itertools.count(1)

    def record(kind: str, payload: dict[str, Any]) -> None:
        # One try records many actions, blocks and artifacts: each its own event.
        recorder.record(recorder.event(kind, payload, discriminator=str(next(numbers))))

    return browse(
        [action.model_dump(mode="json") for action in step.spec.actions],
        agent.browser.model_dump(mode="json"),
        scope=scope,
        record=record,
        artifacts=Artifacts.for_task(context),
        step=step.task_id,
    )


@effects.effect("browser.actions")
def browse(
    actions: list[dict[str, Any]],
    access: dict[str, Any],
    *,
    scope: dict[str, Any],
    record: Any,
    artifacts: Any,
    step: str,
) -> dict[str, Any]:
    """The step's actions as one side effect (they may submit forms): a try or a rerun that finds its
    output recorded reuses it instead of submitting again."""
    return run_actions(actions, access, scope=scope, record=record, artifacts=artifacts, step=step)
