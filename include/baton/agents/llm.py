"""An LLM step's model call: :func:`baton.agents.model.call_model` with what a task's one call adds.

Its agent's tools (MCP servers, a browser), each tool call recorded; the budgets' reservation before the
call and its settlement after; the step's ``usage_limits`` counted across all of its tries, in the task
state store as common-ai counts them (``TaskStateStoreUsageBudget``); the call's spans stamped with the task
instance, pydantic-ai's run id the try's; prompt caching and the tools' log lines as common-ai's operator
gives them; and the ``model.called`` event, also for a failed call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.providers.common.ai.observability import (
    build_run_identity_attributes,
    make_task_instance_run_key,
    stamp_identity_on_agent_spans,
)
from airflow.providers.common.ai.toolsets.logging import ToolLoggingCapability
from airflow.providers.common.ai.utils.logging import log_run_summary
from airflow.providers.common.ai.utils.prompt_cache import PromptCaching
from airflow.providers.common.ai.utils.usage_budget import (
    TaskStateStoreUsageBudget,
    copy_run_usage,
    subtract_run_usage,
)

from baton.agents.model import as_output, call_model, made
from baton.agents.outputs import output_model
from baton.agents.skills import final
from baton.agents.tools import toolsets
from baton.budgets.ledger import Ledger, Spend
from baton.errors import BudgetExceeded
from baton.spec.roster import Agent

LOG = logging.getLogger(__name__)


def run_llm_step(
    step: Any,
    agent: Agent,
    prompt: str,
    context: Any,
    recorder: Any,
    guard: Any = None,
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> dict[str, Any]:
    """Call ``agent`` for ``step`` (a compiled step), record the model call, and return its validated output
    as a JSON-ready dict. ``guard``: the budgets the call reserves its estimate in first and settles its
    use in after (a call that does not fit fails the step at once: a retry spends what is not there)."""
    log = log or LOG
    reservation = _reserve(guard, agent, prompt, step)
    ti = context["ti"]
    tries = _across_tries(step, context)
    usage = tries.load() if tries is not None else None
    before = copy_run_usage(usage) if usage is not None else None

    make = _maker(step, agent, ti, recorder, log)
    run: dict[str, Any] = {"run_id": make_task_instance_run_key(ti)}
    if usage is not None:
        run["usage"] = usage  # what the earlier tries used counts against the limits
    payload = None
    try:
        answer = asyncio.run(call_model(agent, prompt, make, step=step, **run))
        payload = answer.payload
    except BaseException as error:
        payload = getattr(error, "spent", None)
        raise
    finally:
        if tries is not None:
            tries.save(usage)
        if payload:
            recorder.record(recorder.event("model.called", payload))
        if guard is not None:
            guard.settle(agent, reservation, payload)
    log_run_summary(
        log, answer.result, usage=subtract_run_usage(usage, before) if usage is not None else None
    )
    if tries is not None:
        tries.clear()  # the step succeeded: a later run of the task starts from nothing
    return as_output(answer.output)


def _maker(step: Any, agent: Agent, ti: Any, recorder: Any, log: Any) -> Any:
    """What builds the step's pydantic-ai agent: its output model, its tools (each call an event of this
    try, written at once: a lost write fails the step), prompt caching, tool logging and the run's identity
    on its spans."""

    def record(kind: str, payload: dict[str, Any], discriminator: str) -> None:
        recorder.record(recorder.event(kind, payload, discriminator))

    def make() -> Any:
        model_agent = made(
            agent,
            output_model(step.task_id, step.output_spec) or str,
            retries=step.spec.output_retries,
            toolsets=toolsets(agent.model_dump(mode="json"), record),
            capabilities=[PromptCaching(), ToolLoggingCapability(logger=log)],
        )
        stamp_identity_on_agent_spans(model_agent, build_run_identity_attributes(ti))
        return model_agent

    return make


def _across_tries(step: Any, context: Any) -> TaskStateStoreUsageBudget | None:
    """Where the usage of a step with ``usage_limits`` is kept from one try to the next (the task state
    store, Airflow 3.3 and later); None without limits or a store."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if step.spec.usage_limits is None or store is None:
        return None
    return TaskStateStoreUsageBudget(store, max_tries=context["ti"].max_tries)


def _reserve(guard: Any, agent: Agent, prompt: str, step: Any) -> Any:
    """The call's reservation in its budgets (None: no guard, or no budget applies). A call that does not
    fit fails the step without a retry, unless its budget defers it to its next window, may still be
    raised once by a person, or sends a routed step to a cheaper agent (``at_limit: defer | ask |
    fallback``: the step's try decides, see StepRun)."""
    if guard is None:
        return None
    try:
        return guard.reserve(agent, prompt, step.spec.usage_limits)
    except BudgetExceeded as error:
        budget = error.budget
        if (
            budget.at_limit == "defer"
            or (budget.at_limit == "fallback" and step.routed)  # the step's try routes it once more
            or (budget.at_limit == "ask" and Ledger(guard.store).raised(budget, error.window) == Spend())
        ):
            raise
        raise final(BudgetExceeded)(str(error)) from None
