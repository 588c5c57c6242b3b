"""Runs an LLM agent step through common-ai's AgentOperator, with Baton's hook and output schema."""

from __future__ import annotations

import hashlib
import time
from functools import cached_property
from typing import Any

from airflow.providers.common.ai.operators.agent import AgentOperator as CommonAIAgentOperator
from airflow.sdk.bases.operator import ExecutorSafeguard
from pydantic import BaseModel
from pydantic_ai import capture_run_messages
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded

from baton import metrics, tracing
from baton.agents.outputs import TextOutput, output_model
from baton.agents.tools import Record, toolsets
from baton.errors import AgentError, BudgetExceeded, OutputInvalid
from baton.hooks.llm import BatonAIHook
from baton.hooks.offline import OFFLINE_MODEL_NAME
from baton.spec.roster import Agent


class AgentCall(CommonAIAgentOperator):
    """common-ai's ``AgentOperator`` (usage limits, fallback connections, durable replay, HITL review),
    resolving its model through :class:`BatonAIHook`.

    Made with ``do_xcom_push=False``: Baton records each call as a ``model.called`` event read from the
    run's messages, so common-ai's three run-metadata XComs (and Baton's two pulls of them) would be five
    round trips to the API server per try for nothing. It never pauses for a tool's approval (no Baton
    tool asks for one; people answer through Baton's approvals), which spares each try common-ai's
    clean-up of a paused run's transcript in the task state store.
    """

    def _supports_tool_approval(self) -> bool:  # common-ai's switch for pausing on a tool's approval
        return False

    @cached_property
    def llm_hook(self) -> BatonAIHook:
        return BatonAIHook(
            llm_conn_id=self.llm_conn_id, model_id=self.model_id, fallback_conn_ids=self.fallback_conn_ids
        )


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


def as_output(result: Any) -> dict[str, Any]:
    """A model's answer as a step output: a structured one as JSON, a text one as ``{"text": ...}``."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, dict):
        return result
    return TextOutput(text=str(result)).model_dump()


def used(messages: list[Any]) -> tuple[dict[str, int], str | None] | None:
    """What the model responses among a run's ``messages`` used (requests, input and output tokens, cut-off
    answers included: their tokens were spent) and the model that gave the last one; None when the model
    was never reached (e.g. the connection could not be resolved)."""
    from pydantic_ai.messages import ModelResponse

    responses = [message for message in messages if isinstance(message, ModelResponse)]
    if not responses:
        return None
    usage = {
        "requests": len(responses),
        "input_tokens": sum(response.usage.input_tokens or 0 for response in responses),
        "output_tokens": sum(response.usage.output_tokens or 0 for response in responses),
    }
    return usage, responses[-1].model_name


def _spent(error: Exception, agent: Agent, prompt: str, messages: list[Any], began: float) -> Exception:
    """``error`` carrying, as ``spent``, the ``model.called`` payload of what its failed call used (the
    budgets settle it: tokens spent on answers that broke the schema are spent all the same)."""
    spent = used(messages)
    if spent is not None:
        usage, answered = spent
        model = answered or agent.model or _unnamed(agent)
        error.spent = model_called(model, agent.cost.model_dump(), usage, time.monotonic() - began, prompt)  # type: ignore[attr-defined]
    return error


def _record_model_call(
    agent: Agent, prompt: str, messages: list[Any], recorder: Any, latency: float
) -> dict[str, Any] | None:
    """A ``model.called`` event from the run's captured ``messages`` (also after a failed attempt); its
    payload, None when the model was never reached."""
    spent = used(messages)
    if spent is None:
        return None
    usage, answered = spent
    payload = model_called(
        answered or agent.model or _unnamed(agent), agent.cost.model_dump(), usage, latency, prompt
    )
    recorder.record(recorder.event("model.called", payload))
    return payload


def _observe(
    current: Any, step: Any, agent: Agent, payload: dict[str, Any] | None, model: Any, answered: str | None
) -> None:
    """What a model call used (``payload``, its ``model.called`` event's; never the prompt's hash) goes on
    its span, with the provider and the name of the resolved pydantic-ai ``model`` and the model that
    ``answered``, and to the metrics."""
    requested = getattr(model, "model_name", None) or agent.model
    used = payload or {}
    tracing.agent_used(
        current,
        provider=getattr(model, "system", None),
        request_model=requested,
        response_model=answered,
        input_tokens=used.get("input_tokens"),
        output_tokens=used.get("output_tokens"),
        cost=used.get("cost"),
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


def _answered(agent: Agent, payload: dict[str, Any] | None) -> str | None:
    """The model that answered, as its response named it (not the stand-in of :func:`_record_model_call`)."""
    model = (payload or {}).get("model")
    return model if model and model != _unnamed(agent) else None


def _unnamed(agent: Agent) -> str:
    return f"the model of connection {agent.llm_conn_id}"


def why_invalid(messages: list[Any], limit: int = 3) -> str:
    """What the last re-ask told the model was wrong with its answer: each violated constraint with the
    field's path and (cut short) the value given, e.g. ``subtasks.0.id: String should match pattern
    '^[a-z][a-z0-9_]*$' (got 'Backend API')``; "" when no re-ask was made."""
    from pydantic_ai.messages import ModelRequest

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


def agent_call(step: Any, agent: Agent, prompt: str, record: Record) -> AgentCall:
    """The common-ai operator that performs ``step``'s model call by ``agent`` with the rendered ``prompt``,
    with the agent's tools (its MCP servers), whose calls are recorded through ``record``."""
    model = output_model(step.task_id, step.output_spec)
    tools = toolsets(agent.model_dump(mode="json"), record)
    limits = step.spec.usage_limits
    return AgentCall(
        task_id=step.task_id,
        prompt=prompt,
        llm_conn_id=agent.llm_conn_id,
        model_id=agent.model,
        system_prompt=agent.system_prompt or f"You are {agent.name}. {agent.description}",
        output_type=model or str,
        serialize_output=True,
        do_xcom_push=False,
        agent_params={"retries": {"output": step.spec.output_retries}, "name": agent.name},
        usage_limits=limits.model_dump(exclude_none=True) if limits else None,
        capabilities=tracing.agent_capabilities() or None,  # the model's and tools' spans
        **({"toolsets": tools} if tools else {}),
    )


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
        from baton.agents.skills import final
        from baton.budgets.ledger import Ledger, Spend

        budget = error.budget
        if (
            budget.at_limit == "defer"
            or (budget.at_limit == "fallback" and step.routed)  # the step's try routes it once more
            or (budget.at_limit == "ask" and Ledger(guard.store).raised(budget, error.window) == Spend())
        ):
            raise
        raise final(BudgetExceeded)(str(error)) from None


def run_llm_step(
    step: Any, agent: Agent, prompt: str, context: Any, recorder: Any, guard: Any = None
) -> dict[str, Any]:
    """Call ``agent`` for ``step`` (a compiled step), record the model call, and return its validated output
    as a JSON-ready dict. ``guard``: the budgets the call reserves its estimate in first and settles its
    use in after (a call that does not fit fails the step at once: a retry spends what is not there)."""
    reservation = _reserve(guard, agent, prompt, step)

    def record(kind: str, payload: dict[str, Any], discriminator: str) -> None:
        """An event of this try (e.g. ``tool.called``), written at once: a lost write fails the step."""
        recorder.record(recorder.event(kind, payload, discriminator))

    call = agent_call(step, agent, prompt, record)
    # The task runner marks the running task in ExecutorSafeguard; mark the nested call the same way
    # so that Airflow does not warn that it runs "outside of the Task Runner".
    token = ExecutorSafeguard.tracker.set(call)
    started = time.monotonic()
    with (
        tracing.invoke_agent(agent.name, workflow=step.workflow, step=step.task_id) as current,
        capture_run_messages() as messages,
    ):
        try:
            result = call.execute(context)
        except UsageLimitExceeded as error:
            raise AgentError(
                f"Agent '{agent.name}' hit the usage limits of step '{step.task_id}' "
                f"({step.spec.usage_limits.model_dump(exclude_none=True) if step.spec.usage_limits else None}): "
                f"{error}. Raise usage_limits in the template if the step needs more."
            ) from error
        except UnexpectedModelBehavior as error:
            cause = why_invalid(messages)
            raise OutputInvalid(
                f"Agent '{agent.name}' gave no valid output for step '{step.task_id}' after "
                f"{step.spec.output_retries} re-ask(s): {error}"
                + (f"; the last answer broke: {cause}" if cause else "")
                + ". Loosen the step's output fields or raise output_retries."
            ) from error
        finally:
            ExecutorSafeguard.tracker.reset(token)
            payload = _record_model_call(agent, prompt, messages, recorder, time.monotonic() - started)
            if guard is not None:
                guard.settle(agent, reservation, payload)
            model = getattr(call.llm_hook, "_model", None)  # resolved by the call (None if it could not be)
            _observe(current, step, agent, payload, model, _answered(agent, payload))
    return as_output(result)


class ModelCalls:
    """The model calls of many items of one step (a fan-out), straight through pydantic-ai: one model
    agent per roster agent, made once and reused by every item (common-ai's operator is one task's)."""

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
            from pydantic import Field, create_model

            item = output_model(self.step.task_id, self.step.output_spec) or TextOutput
            one_each = Field(min_length=n, max_length=n, description="one per task, in order")
            return create_model(f"{item.__name__}Answers", answers=(list[item], one_each))

        return self._made(agent, f"{agent.name}*{n}", answers)

    def _made(self, agent: Agent, key: str, output_type: Any) -> Any:
        """The model agent kept under ``key``, made once with ``output_type()``: one per roster agent and
        shape of answer, reused by every item."""
        if key not in self._agents:
            hook = BatonAIHook(llm_conn_id=agent.llm_conn_id, model_id=agent.model)
            self._agents[key] = hook.create_agent(
                output_type(),
                instructions=agent.system_prompt or f"You are {agent.name}. {agent.description}",
                retries={"output": self.step.spec.output_retries},
                name=agent.name,
                capabilities=tracing.agent_capabilities(),  # the model's and tools' spans
            )
        return self._agents[key]

    async def call(self, agent: Agent, prompt: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``agent``'s validated output for ``prompt``, and the payload of its ``model.called`` event."""
        step = self.step
        with tracing.invoke_agent(agent.name, workflow=step.workflow, step=step.task_id) as current:
            model_agent = self.model_agent(agent)
            output, payload, answered = await self._run(agent, model_agent, prompt, 1)
            _observe(current, step, agent, payload, model_agent.model, answered)
            return as_output(output), payload

    async def call_group(
        self, agent: Agent, prompts: list[str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``agent``'s outputs for ``prompts`` from one model call (:func:`group_prompt`), and its
        ``model.called`` payload (``items``: how many it answered). Its usage limits are the step's times
        the items: the call does the work of that many."""
        step, n = self.step, len(prompts)
        with tracing.invoke_agent(agent.name, workflow=step.workflow, step=step.task_id) as current:
            model_agent = self.group_agent(agent, n)
            output, payload, answered = await self._run(agent, model_agent, group_prompt(prompts), n)
            _observe(current, step, agent, payload, model_agent.model, answered)
            return [a.model_dump(mode="json") for a in output.answers], {**payload, "items": n}

    async def _run(
        self, agent: Agent, model_agent: Any, prompt: str, n: int
    ) -> tuple[Any, dict[str, Any], str | None]:
        from pydantic_ai.usage import UsageLimits

        limits = scaled_limits(self.step.spec.usage_limits, n)
        limits = UsageLimits(**limits.model_dump(exclude_none=True)) if limits else None
        began = time.monotonic()
        try:
            with capture_run_messages() as messages:
                result = await model_agent.run(prompt, usage_limits=limits)
        except UsageLimitExceeded as error:
            failed: Exception = AgentError(f"agent '{agent.name}' hit the step's usage limits: {error}")
            raise _spent(failed, agent, prompt, messages, began) from error
        except UnexpectedModelBehavior as error:
            cause = why_invalid(messages)
            failed = OutputInvalid(
                f"agent '{agent.name}' gave no valid output after {self.step.spec.output_retries} re-ask(s): "
                f"{error}" + (f"; the last answer broke: {cause}" if cause else "")
            )
            raise _spent(failed, agent, prompt, messages, began) from error
        used = result.usage
        model = getattr(model_agent.model, "model_name", None) or agent.model or "unknown"
        tokens = {
            "requests": used.requests,
            "input_tokens": used.input_tokens,
            "output_tokens": used.output_tokens,
        }
        payload = model_called(model, agent.cost.model_dump(), tokens, time.monotonic() - began, prompt)
        return result.output, payload, result.response.model_name


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
