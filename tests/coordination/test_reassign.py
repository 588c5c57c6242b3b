"""A person's reassignment (the Coordination page's ``step.reassigned``) decides the agent of the try after
the one it follows, and only that try; an agent that is not one of the step's candidates is not taken."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter

from baton.coordination.routing import NoCandidate
from baton.coordination.step import StepRun
from baton.events.event import Event
from baton.plan import CompiledStep
from baton.spec.step import Step
from tests.budgets.test_fanout_budget import _premium_and_thrifty
from tests.test_tracing import _TaskInstance


def _try(store, step, try_number: int) -> list[tuple[str, str]]:
    ti = _TaskInstance(
        dag_id="leads", task_id="assess", run_id="run_re", map_index=-1, try_number=try_number, max_tries=5
    )
    context = {
        "ti": ti,
        "task_instance": ti,
        "dag_run": SimpleNamespace(run_type="manual", conf={}),
        "logical_date": None,
    }
    StepRun(step, context).call({"inputs": {}, "steps": {}, "context": {}, "run": {"id": "run_re"}})
    selected = [e for e in store.read("run_re", types=["agent.selected"]) if e.try_number == try_number]
    return [(e.agent, e.payload["reason"]) for e in selected]


def test_the_next_try_goes_to_the_agent_a_person_chose_and_the_one_after_to_the_router(
    store, tmp_path, monkeypatch
):
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_BUDGET_LLM", os.environ["AIRFLOW_CONN_BATON_LLM"])  # the offline model
    premium, thrifty = _premium_and_thrifty(store)
    spec = {"id": "assess", "route": {"capabilities": ["assess"], "prefer": "reliable"}, "instruction": "Go."}
    step = CompiledStep(workflow="leads", template_version=1, spec=TypeAdapter(Step).validate_python(spec),
                        candidates=(premium, thrifty))  # fmt: skip
    ((agent, reason),) = _try(store, step, 1)
    assert agent == "premium" and reason.startswith("prefer reliable: ")  # the router's choice
    reassign = {"agent": "thrifty", "after_try": 1, "by": "ops.lead"}
    ghost = {"agent": "ghost", "after_try": 2, "by": "ops.lead"}
    store.append([Event(type="step.reassigned", run_id="run_re", workflow="leads", step="assess", try_number=1,
                        payload=reassign),
                  Event(type="step.reassigned", run_id="run_re", workflow="leads", step="assess", try_number=2,
                        payload=ghost, discriminator="b")])  # fmt: skip
    assert _try(store, step, 2) == [("thrifty", "chosen by a person")]
    # the reassignment after try 2 names no candidate: the router chooses, and both agents had a try already
    with pytest.raises(
        NoCandidate, match=r"every agent with \['assess'\] is left out: premium: failed try 1"
    ):
        _try(store, step, 3)
