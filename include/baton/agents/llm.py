"""Runs an LLM agent step through common-ai's AgentOperator, with Baton's hook and output schema."""

from __future__ import annotations

import hashlib
import time
from functools import cached_property
from typing import Any

from airflow.providers.common.ai.operators.agent import AgentOperator as CommonAIAgentOperator
from airflow.providers.common.ai.utils.logging import MODEL_NAME_XCOM_KEY
from airflow.sdk.bases.operator import ExecutorSafeguard
from pydantic import BaseModel
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded

from baton.agents.hook import BatonAIHook
from baton.agents.outputs import TextOutput, output_model
from baton.agents.tools import Record, toolsets
from baton.errors import AgentError


class AgentCall(CommonAIAgentOperator):
    """common-ai's ``AgentOperator`` (usage limits, fallback connections, durable replay, HITL review),
    resolving its model through :class:`BatonAIHook`."""

    @cached_property
    def llm_hook(self) -> BatonAIHook:
        return BatonAIHook(
            llm_conn_id=self.llm_conn_id, model_id=self.model_id, fallback_conn_ids=self.fallback_conn_ids
        )


def model_called(
    model: str, cost: dict[str, float], usage: dict[str, int], latency: float, prompt: str
) -> dict[str, Any]:
    """The payload of a ``model.called`` event: the model, tokens, their cost at the roster's prices,
    the latency, and the prompt by hash and length (never its text)."""
    tokens_in, tokens_out = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {
        "model": model,
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


def _record_model_call(step: Any, prompt: str, context: Any, recorder: Any, latency: float) -> None:
    """A ``model.called`` event from what common-ai pushed to XCom (also after a failed attempt)."""
    ti = context["ti"]
    pull = {"task_ids": ti.task_id, "map_indexes": ti.map_index}
    usage = ti.xcom_pull(key="usage", **pull)
    if not usage:
        return  # the model was never reached (e.g. the connection could not be resolved)
    model = (
        ti.xcom_pull(key=MODEL_NAME_XCOM_KEY, **pull)
        or step.agent.get("model")
        or f"the model of connection {step.agent['llm_conn_id']}"
    )
    payload = model_called(model, step.agent.get("cost") or {}, usage, latency, prompt)
    recorder.record(recorder.event("model.called", payload))


def agent_call(step: Any, prompt: str, record: Record) -> AgentCall:
    """The common-ai operator that performs ``step``'s model call with the rendered ``prompt``, with the
    agent's tools (its MCP servers), whose calls are recorded through ``record``."""
    agent = step.agent
    model = output_model(step.task_id, step.output_spec)
    tools = toolsets(agent, record)
    return AgentCall(
        task_id=step.task_id,
        prompt=prompt,
        llm_conn_id=agent["llm_conn_id"],
        model_id=agent.get("model"),
        system_prompt=agent.get("system_prompt")
        or f"You are {agent['name']}. {agent.get('description', '')}",
        output_type=model or str,
        serialize_output=True,
        agent_params={"retries": {"output": step.output_retries}, "name": agent["name"]},
        usage_limits=getattr(step, "usage_limits", None),
        **({"toolsets": tools} if tools else {}),
    )


def run_llm_step(step: Any, prompt: str, context: Any, recorder: Any) -> dict[str, Any]:
    """Call ``step``'s agent, record the model call, and return its validated output as a JSON-ready dict."""

    def record(kind: str, payload: dict[str, Any], discriminator: str) -> None:
        """An event of this try (e.g. ``tool.called``), written at once: a lost write fails the step."""
        recorder.record(recorder.event(kind, payload, discriminator))

    call = agent_call(step, prompt, record)
    # The task runner marks the running task in ExecutorSafeguard; mark the nested call the same way
    # so that Airflow does not warn that it runs "outside of the Task Runner".
    token = ExecutorSafeguard.tracker.set(call)
    started = time.monotonic()
    try:
        result = call.execute(context)
    except UsageLimitExceeded as error:
        raise AgentError(
            f"Agent '{step.agent['name']}' hit the usage limits of step '{step.task_id}' "
            f"({step.usage_limits}): {error}. Raise usage_limits in the template if the step needs more."
        ) from error
    except UnexpectedModelBehavior as error:
        raise AgentError(
            f"Agent '{step.agent['name']}' gave no valid output for step '{step.task_id}' after "
            f"{step.output_retries} re-ask(s): {error}. Loosen the step's output fields or raise output_retries."
        ) from error
    finally:
        ExecutorSafeguard.tracker.reset(token)
        _record_model_call(step, prompt, context, recorder, time.monotonic() - started)
    return as_output(result)
