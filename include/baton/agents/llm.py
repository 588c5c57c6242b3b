"""Runs an LLM agent step through common-ai's AgentOperator, with Baton's hook and output schema."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.common.ai.operators.agent import AgentOperator as CommonAIAgentOperator
from airflow.sdk.bases.operator import ExecutorSafeguard
from pydantic import BaseModel
from pydantic_ai.exceptions import UnexpectedModelBehavior

from baton.agents.hook import BatonAIHook
from baton.agents.outputs import TextOutput, output_model
from baton.errors import AgentError


class AgentCall(CommonAIAgentOperator):
    """common-ai's ``AgentOperator`` (usage limits, fallback connections, durable replay, HITL review),
    resolving its model through :class:`BatonAIHook`."""

    @cached_property
    def llm_hook(self) -> BatonAIHook:
        return BatonAIHook(
            llm_conn_id=self.llm_conn_id, model_id=self.model_id, fallback_conn_ids=self.fallback_conn_ids
        )


def agent_call(step: Any, prompt: str) -> AgentCall:
    """The common-ai operator that performs ``step``'s model call with the rendered ``prompt``."""
    agent = step.agent
    model = output_model(step.task_id, step.output_spec)
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
    )


def run_llm_step(step: Any, prompt: str, context: Any) -> dict[str, Any]:
    """Call ``step``'s agent and return its validated output as a JSON-ready dict."""
    call = agent_call(step, prompt)
    # The task runner marks the running task in ExecutorSafeguard; mark the nested call the same way
    # so that Airflow does not warn that it runs "outside of the Task Runner".
    token = ExecutorSafeguard.tracker.set(call)
    try:
        result = call.execute(context)
    except UnexpectedModelBehavior as error:
        raise AgentError(
            f"Agent '{step.agent['name']}' gave no valid output for step '{step.task_id}' after "
            f"{step.output_retries} re-ask(s): {error}. Loosen the step's output fields or raise output_retries."
        ) from error
    finally:
        ExecutorSafeguard.tracker.reset(token)
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, dict):
        return result
    return TextOutput(text=str(result)).model_dump()
