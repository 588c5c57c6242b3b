"""agent_timeout in a fan-out: an item's model call that does not answer fails that item with AgentTimeout
(recorded, its budget reservation released); a group's call gets the timeout times its items, and when it
does not answer, its items run one by one. The model hangs until the test lets it go: nothing is timed."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter

from baton.budgets.config import Budget
from baton.coordination.fanout import BatchResult, FanOut, subtasks_of
from baton.events.recorder import StepRecorder
from baton.hooks import offline
from baton.plan import CompiledStep, FanOutPlan
from baton.spec.roster import Agent
from baton.spec.step import Step

WRITER = Agent(name="writer", llm_conn_id="hang_llm", capabilities=["x"], max_concurrency=8)


@pytest.fixture
def hanging(monkeypatch):
    """The offline model never answers (its requests wait until cancelled); how many requests it got."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_HANG_LLM", json.dumps({"conn_type": "pydanticai", "extra": {"model": "baton:offline"}})
    )
    asked: list[str] = []

    async def hang(messages, info):
        asked.append(offline.prompt_of(messages))
        await asyncio.Event().wait()  # cancelled by the agent_timeout

    monkeypatch.setattr(offline, "REQUEST_HOOKS", [hang])
    return asked


def _fan(store, items_per_call: int | None = None) -> FanOut:
    for_each = {"over": "src.items", "concurrency": 4, "partial_failure": "continue"}
    if items_per_call:
        for_each["items_per_call"] = items_per_call
    spec = {"id": "fan", "agent": "writer", "for_each": for_each, "instruction": "Assess {{ item.id }}"}
    step = CompiledStep(
        workflow="w",
        template_version=1,
        spec=TypeAdapter(Step).validate_python(spec),
        agent=WRITER,
        agent_timeout=0.2,
        fan_out=FanOutPlan(
            source="src",
            field="items",
            concurrency=4,
            batch_size=None,
            partial_failure="continue",
            items_per_call=items_per_call,
        ),
    )
    ti = SimpleNamespace(run_id="run_t", task_id="fan", map_index=-1, try_number=1, max_tries=1)
    context = {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}), "logical_date": None}
    recorder = StepRecorder(store, context, workflow="w", template_version=1)
    scope = {"inputs": {}, "steps": {}, "context": {}, "run": {"id": "run_t"}}
    budget = Budget(name="day", per="day", tokens=1_000_000, warn_at=None)
    fan = FanOut(step, context, scope, recorder, timedelta(hours=1), logging.getLogger("test"), [budget])
    fan.models.model_agent(WRITER)  # made before the clock runs: the time goes to the hanging model
    if items_per_call:
        fan.models.group_agent(WRITER, items_per_call)
    return fan


def test_an_item_whose_model_does_not_answer_fails_with_agent_timeout_and_frees_its_reservation(
    store, hanging
):
    outcome = _fan(store).run(subtasks_of([{"id": "a"}, {"id": "b"}]), BatchResult())
    assert outcome.results == {}
    message = "subtask {} of step 'fan' did not answer within its agent_timeout of 0.2 s"
    assert {k: f["error"] for k, f in outcome.failures.items()} == {
        k: f"SubtaskError: {message.format(k)}" for k in ("a", "b")
    }
    events = list(store.read("run_t"))
    failed = {e.payload["subtask"]: e.payload for e in events if e.type == "subtask.failed"}
    assert {k: (p["error_class"], p["error"]) for k, p in failed.items()} == {
        k: ("AgentTimeout", message.format(k)) for k in ("a", "b")
    }
    assert len(hanging) == len(set(hanging)) <= 2  # no item asked twice (the template names the agent)
    settled = [e.payload for e in events if e.type == "budget.settled"]
    assert len(settled) == 2 and all(p["released"] and p["tokens"] == 0 for p in settled)
    assert [e for e in events if e.type == "model.called"] == []


def test_a_group_gets_the_timeout_times_its_items_then_its_items_go_one_by_one(store, hanging, caplog):
    with caplog.at_level(logging.WARNING, logger="test"):
        outcome = _fan(store, items_per_call=2).run(subtasks_of([{"id": "a"}, {"id": "b"}]), BatchResult())
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "test"]
    assert warning == (
        "Step fan: the call for items a..b failed (AgentTimeout: the call for 2 items of step 'fan' did not "
        "answer within 0.4 s (agent_timeout 0.2 s an item)); they run one by one"
    )
    assert len(hanging) == len(set(hanging)) <= 3  # the group's call, then each item's, none answered
    assert sorted(outcome.failures) == ["a", "b"]
    assert outcome.failures["b"]["error"] == (
        "SubtaskError: subtask b of step 'fan' did not answer within its agent_timeout of 0.2 s"
    )
