"""One model call, whoever makes it: a step's call, a fan-out item's, a group of items' and a compensation's.

The pydantic-ai agent is made by common-ai's hook through its public API (:func:`made`: the hook resolves
the connection's model, or Baton's offline model where it is chosen, and adds common-ai's secret masking);
the call is pydantic-ai's ``Agent.run``, with its messages captured. What the call used is read
from those messages as the payload of a ``model.called`` event, also when it fails (the error then carries
it as ``spent``, which the budgets settle: tokens spent on answers that broke the schema are spent all the
same). The two ways a model fails a step (its usage limits hit, no valid output after the re-asks) become
Baton's errors in :func:`model_error`, the one place that maps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from airflow.providers.common.ai.utils.toolset_base import ensure_masked
from pydantic import BaseModel, Field, create_model
from pydantic_ai import capture_run_messages
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import ModelRequest, ModelResponse
from pydantic_ai.usage import UsageLimits

from baton import metrics, tracing
from baton.agents.outputs import TextOutput, output_model
from baton.errors import AgentError, OutputInvalid
from baton.hooks.llm import BatonAIHook
from baton.hooks.offline import OFFLINE_MODEL_NAME
from baton.spec.roster import Agent


class Answer(NamedTuple):
    """A model call that succeeded: its ``output`` as the model gave it (a pydantic model or a text), the
    payload of its ``model.called`` event, and pydantic-ai's run ``result``."""

    output: Any
    payload: dict[str, Any]
    result: Any


def instructions(agent: Agent) -> str:
    """The system prompt of ``agent``'s model: the roster's, or who the agent is."""
    return agent.system_prompt or f"You are {agent.name}. {agent.description}"


def made(
    agent: Agent,
    output_type: Any,
    *,
    retries: int | None = None,
    toolsets: list[Any] | None = None,
    capabilities: list[Any] | None = None,
) -> Any:
    """``agent``'s pydantic-ai agent answering ``output_type``, made by common-ai's hook from the agent's
    LLM connection: ``retries`` re-asks for an output that breaks its schema (pydantic-ai's default when
    None); ``toolsets`` masked as common-ai masks an operator's; the spans' capability first, then
    ``capabilities``."""
    hook = BatonAIHook(llm_conn_id=agent.llm_conn_id, model_id=agent.model)
    kwargs: dict[str, Any] = {"name": agent.name}
    if retries is not None:
        kwargs["retries"] = {"output": retries}
    if toolsets:
        kwargs["toolsets"] = [ensure_masked(toolset) for toolset in toolsets]
    kwargs["capabilities"] = [*tracing.agent_capabilities(), *(capabilities or ())]  # the spans
    return hook.create_agent(output_type, instructions=instructions(agent), **kwargs)


async def call_model(
    agent: Agent,
    prompt: str,
    make: Callable[[], Any],
    *,
    step: Any = None,
    items: int = 1,
    item: bool = False,
    **run: Any,
) -> Answer:
    """``prompt`` answered by the pydantic-ai agent ``make()`` returns (made inside the call: a model that
    cannot be resolved is this call's failure).

    :param step: the compiled step the call is for: its usage limits (times ``items``, for a call that
        answers that many of its items), its ``invoke_agent`` span and metrics, its errors' wording (an
        ``item``'s, or the step's). None for a compensation's call: none of these.
    :param run: passed to pydantic-ai's ``Agent.run`` (``usage``, ``run_id``).
    """
    limits = scaled_limits(step.spec.usage_limits, items) if step is not None else None
    if limits is not None:
        run["usage_limits"] = UsageLimits(**limits.model_dump(exclude_none=True))
    span = (
        tracing.invoke_agent(agent.name, workflow=step.workflow, step=step.task_id)
        if step is not None
        else contextlib.nullcontext()
    )
    began, model_agent, payload = time.monotonic(), None, None
    with span as current, capture_run_messages() as messages:
        try:
            model_agent = make()
            result = await model_agent.run(prompt, **run)
        except Exception as error:
            failed = model_error(error, agent, step, messages, item)
            payload = spent(agent, prompt, messages, time.monotonic() - began, model_agent)
            if payload is not None:
                with contextlib.suppress(AttributeError):  # an error that takes no attribute settles nothing
                    failed.spent = payload  # type: ignore[attr-defined]
            if failed is error:
                raise
            raise failed from error
        finally:
            if payload is None:
                payload = spent(agent, prompt, messages, time.monotonic() - began, model_agent)
            if step is not None:
                _observe(current, step, agent, payload, model_agent)
    return Answer(result.output, payload or {}, result)


def model_error(error: Exception, agent: Agent, step: Any, messages: list[Any], item: bool) -> Exception:
    """What ``error`` of a model call says to Baton: hitting the step's usage limits is an ``AgentError``,
    answers that break its output after the re-asks an ``OutputInvalid`` (naming the constraint the last
    answer broke); an item's message is short (its step is named around it). Any other error, and any
    error of a compensation's call (no ``step``), is left as it is."""
    if step is None:
        return error
    limits = step.spec.usage_limits.model_dump(exclude_none=True) if step.spec.usage_limits else None
    if isinstance(error, UsageLimitExceeded):
        if item:
            return AgentError(f"agent '{agent.name}' hit the step's usage limits: {error}")
        return AgentError(
            f"Agent '{agent.name}' hit the usage limits of step '{step.task_id}' ({limits}): {error}. "
            "Raise usage_limits in the template if the step needs more."
        )
    if isinstance(error, UnexpectedModelBehavior):
        cause = why_invalid(messages)
        broke = f"; the last answer broke: {cause}" if cause else ""
        retries = step.spec.output_retries
        if item:
            return OutputInvalid(
                f"agent '{agent.name}' gave no valid output after {retries} re-ask(s): {error}{broke}"
            )
        return OutputInvalid(
            f"Agent '{agent.name}' gave no valid output for step '{step.task_id}' after {retries} re-ask(s): "
            f"{error}{broke}. Loosen the step's output fields or raise output_retries."
        )
    return error


def answer_text(agent: Agent, prompt: str) -> dict[str, Any]:
    """A compensation's call: ``agent``'s text for ``prompt`` as a step output (``{"text": ...}``)."""
    answer = asyncio.run(call_model(agent, prompt, lambda: made(agent, str)))
    return as_output(answer.output)


# --- what a call used ---------------------------------------------------------------------------------


def model_called(
    model: str, cost: dict[str, float], usage: dict[str, int], latency: float, prompt: str
) -> dict[str, Any]:
    """The payload of a ``model.called`` event: the model, tokens, their cost at the roster's prices,
    the latency, and the prompt by hash and length (never its text); ``offline: true`` when the model that
    answered was Baton's offline model (made-up data), so that no page or replay passes it off as a real one."""
    tokens_in, tokens_out = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {
        "model": model,
        **({"offline": True} if model == OFFLINE_MODEL_NAME else {}),
        "requests": usage.get("requests") or 1,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost": round(
            tokens_in / 1000 * cost.get("input_per_1k", 0) + tokens_out / 1000 * cost.get("output_per_1k", 0),
            8,
        ),
        "latency_s": round(latency, 3),
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
        "prompt_chars": len(prompt),
    }


def used(messages: list[Any]) -> tuple[dict[str, int], str | None] | None:
    """What the model responses among a run's ``messages`` used (requests, input and output tokens, cut-off
    answers included: their tokens were spent) and the model that gave the last one; None when the model
    was never reached (e.g. the connection could not be resolved)."""
    responses = [message for message in messages if isinstance(message, ModelResponse)]
    if not responses:
        return None
    usage = {
        "requests": len(responses),
        "input_tokens": sum(response.usage.input_tokens or 0 for response in responses),
        "output_tokens": sum(response.usage.output_tokens or 0 for response in responses),
    }
    return usage, responses[-1].model_name


def spent(
    agent: Agent, prompt: str, messages: list[Any], latency: float, model_agent: Any = None
) -> dict[str, Any] | None:
    """The ``model.called`` payload of a call from its captured ``messages`` (None: the model was never
    reached). Its model is the one that answered last, else the one asked for."""
    found = used(messages)
    if found is None:
        return None
    usage, answered = found
    requested = getattr(getattr(model_agent, "model", None), "model_name", None)
    model = answered or requested or agent.model or _unnamed(agent)
    return model_called(model, agent.cost.model_dump(), usage, latency, prompt)


def _observe(current: Any, step: Any, agent: Agent, payload: dict[str, Any] | None, model_agent: Any) -> None:
    """What a model call used (``payload``, its ``model.called`` event's; never the prompt's hash) goes on
    its span, with the provider and the name of the resolved model and the model that answered, and to
    the metrics."""
    model = getattr(model_agent, "model", None)
    requested = getattr(model, "model_name", None) or agent.model
    answered = (payload or {}).get("model")
    answered = answered if answered and answered != _unnamed(agent) else None
    figures = payload or {}
    tracing.agent_used(
        current,
        provider=getattr(model, "system", None),
        request_model=requested,
        response_model=answered,
        input_tokens=figures.get("input_tokens"),
        output_tokens=figures.get("output_tokens"),
        cost=figures.get("cost"),
    )
    if payload:
        metrics.model_called(
            step.workflow,
            step.task_id,
            agent.name,
            answered or requested,
            cost=payload["cost"],
            input_tokens=payload["input_tokens"],
            output_tokens=payload["output_tokens"],
        )


def _unnamed(agent: Agent) -> str:
    return f"the model of connection {agent.llm_conn_id}"


def why_invalid(messages: list[Any], limit: int = 3) -> str:
    """What the last re-ask told the model was wrong with its answer: each violated constraint with the
    field's path and (cut short) the value given, e.g. ``subtasks.0.id: String should match pattern
    '^[a-z][a-z0-9_]*$' (got 'Backend API')``; "" when no re-ask was made."""

    def errors(part: Any) -> list[dict[str, Any]] | None:
        """A re-ask's validation errors (a retry part, or the output tool's return in newer pydantic-ai)."""
        content = getattr(part, "content", None)
        if isinstance(content, list) and content and all(isinstance(e, dict) and "msg" in e for e in content):
            return content
        return None

    last = None
    for message in messages:
        if isinstance(message, ModelRequest):
            last = next((found for p in message.parts if (found := errors(p)) is not None), last)
    if last is None:
        return ""
    shown = []
    for error in last[:limit]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "the answer"
        given = repr(error.get("input"))
        given = given if len(given) <= 60 else given[:57] + "..."
        shown.append(f"{where}: {error.get('msg', 'invalid')} (got {given})")
    more = len(last) - limit
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def as_output(result: Any) -> dict[str, Any]:
    """A model's answer as a step output: a structured one as JSON, a text one as ``{"text": ...}``."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, dict):
        return result
    return TextOutput(text=str(result)).model_dump()


# --- a fan-out's calls --------------------------------------------------------------------------------


class ModelCalls:
    """The model calls of many items of one step (a fan-out): one pydantic-ai agent per roster agent and
    shape of answer, made once and reused by every item."""

    def __init__(self, step: Any):
        self.step = step
        self._agents: dict[str, Any] = {}

    def model_agent(self, agent: Agent) -> Any:
        """``agent``'s model agent for one item: the step's output (or text)."""
        step = self.step
        return self._made(agent, agent.name, lambda: output_model(step.task_id, step.output_spec) or str)

    def group_agent(self, agent: Agent, n: int) -> Any:
        """The model agent that answers ``n`` items of the step in one call: its output is ``answers``, a
        list of exactly ``n`` of the step's outputs, in the order of the tasks (a wrong count is re-asked)."""

        def answers() -> Any:
            item = output_model(self.step.task_id, self.step.output_spec) or TextOutput
            one_each = Field(min_length=n, max_length=n, description="one per task, in order")
            return create_model(f"{item.__name__}Answers", answers=(list[item], one_each))

        return self._made(agent, f"{agent.name}*{n}", answers)

    def _made(self, agent: Agent, key: str, output_type: Callable[[], Any]) -> Any:
        if key not in self._agents:
            self._agents[key] = made(agent, output_type(), retries=self.step.spec.output_retries)
        return self._agents[key]

    async def call(self, agent: Agent, prompt: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``agent``'s validated output for ``prompt``, and the payload of its ``model.called`` event."""
        answer = await call_model(agent, prompt, lambda: self.model_agent(agent), step=self.step, item=True)
        return as_output(answer.output), answer.payload

    async def call_group(
        self, agent: Agent, prompts: list[str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``agent``'s outputs for ``prompts`` from one model call (:func:`group_prompt`), and its
        ``model.called`` payload (``items``: how many it answered). Its usage limits are the step's times
        the items: the call does the work of that many."""
        n = len(prompts)
        answer = await call_model(
            agent,
            group_prompt(prompts),
            lambda: self.group_agent(agent, n),
            step=self.step,
            items=n,
            item=True,
        )
        return [a.model_dump(mode="json") for a in answer.output.answers], {**answer.payload, "items": n}


def scaled_limits(limits: Any, n: int) -> Any:
    """A step's ``usage_limits`` for a call that answers ``n`` of its items: each token limit times ``n``
    (the request limit stays: it is still one conversation)."""
    if limits is None or n == 1:
        return limits
    scaled = {
        name: value * n
        for name in ("input_tokens_limit", "output_tokens_limit", "total_tokens_limit")
        if (value := getattr(limits, name, None))
    }
    return limits.model_copy(update=scaled)


def group_prompt(prompts: list[str]) -> str:
    """One instruction for many items: each task under its number, and how to answer them."""
    tasks = "\n\n".join(f"## Task {i}\n\n{prompt}" for i, prompt in enumerate(prompts, 1))
    return (
        f"Do each of the {len(prompts)} tasks below on its own. Answer with `answers`: exactly "
        f"{len(prompts)} answers, the first for Task 1, and so on, in order.\n\n{tasks}"
    )
