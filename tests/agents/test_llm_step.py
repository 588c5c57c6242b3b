"""A step's model call (baton.agents.llm.run_llm_step): its usage_limits count across its tries, kept in the
task state store as common-ai keeps them, and cleared once the step succeeds; its model.called is recorded
for a failed call too. The offline model answers outside the schema here, so that every ask is spent."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic_ai.messages import ModelResponse, ToolCallPart

from baton.agents.llm import run_llm_step
from baton.errors import AgentError
from baton.hooks import offline
from baton.plan import CompiledStep
from baton.spec.roster import Agent
from baton.spec.step import Step

WRITER = Agent(name="writer", llm_conn_id="limit_llm", capabilities=["x"])
LIMITS = "Agent 'writer' hit the usage limits of step 'assess' ({'request_limit': 2}): "


class StateStore(dict):
    """The task state store of one task instance (what ``context["task_state_store"]`` offers)."""

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


class Recorder(list):
    def event(self, kind: str, payload: dict[str, Any], discriminator: str = "") -> tuple:
        return kind, payload

    def record(self, event: tuple) -> None:
        self.append(event)


@pytest.fixture
def answers(monkeypatch):
    """What the offline model answers each request (``invalid`` while True); the requests it got."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIMIT_LLM", json.dumps({"conn_type": "pydanticai", "extra": {"model": "baton:offline"}})
    )
    state = SimpleNamespace(invalid=True, requests=0)

    async def answer(messages, info):
        state.requests += 1
        if state.invalid:
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"unexpected": True})])
        return None

    monkeypatch.setattr(offline, "REQUEST_HOOKS", [answer])
    return state


def _try(store: StateStore, try_number: int) -> tuple[Any, Recorder]:
    spec = {
        "id": "assess",
        "agent": "writer",
        "instruction": "Assess",
        "usage_limits": {"request_limit": 2},
        "output_retries": 5,
        "output": {"verdict": {"type": "string", "enum": ["go", "hold"]}},
    }
    step = CompiledStep(
        workflow="w", template_version=1, spec=TypeAdapter(Step).validate_python(spec), agent=WRITER
    )
    ti = SimpleNamespace(
        dag_id="w", task_id="assess", run_id="r1", map_index=-1, try_number=try_number, max_tries=3
    )
    context = {"ti": ti, "task_instance": ti, "task_state_store": store}
    recorder = Recorder()
    try:
        return run_llm_step(step, WRITER, "Assess", context, recorder), recorder
    except AgentError as error:
        return error, recorder


def test_a_steps_usage_limits_count_across_its_tries_and_reset_when_it_succeeds(answers):
    store = StateStore()
    first, recorded = _try(store, 1)
    assert str(first).startswith(LIMITS) and answers.requests == 2  # the third ask is over the limit
    assert [payload["requests"] for kind, payload in recorded if kind == "model.called"] == [2]

    second, recorded = _try(store, 2)
    assert str(second).startswith(LIMITS) and answers.requests == 2, "the second try may ask nothing more"
    assert recorded == [], "no model answered: no model.called"

    answers.invalid = False
    fresh = StateStore()  # a cleared task instance: a budget of its own
    output, recorded = _try(fresh, 1)
    assert output["verdict"] in ("go", "hold") and answers.requests == 3
    assert fresh == {}, "a step that succeeded leaves no usage behind for the next run of the task"
