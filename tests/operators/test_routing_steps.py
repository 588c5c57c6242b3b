"""Routing in a real ``dag.test()``: a failing agent is replaced on the next try and tripped out by
its circuit breaker; a for_each is mapped over batches and its subtasks routed around the open
breaker; a fan-out whose only agent is out continues with a list of failures."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from baton.events import EventStore
from baton.events.migrations import upgrade
from baton.events.store import engine_for
from tests.agents.openai_server import OpenAICompatibleServer
from tests.conftest import FIXTURE_DAGS, run_dag_test_in_subprocess

LEADS = 14  # include/demo/leads.json


@pytest.fixture(scope="module")
def routing_run(airflow_db, tmp_path_factory):
    # An event store of its own: the circuit this run opens (alpha_drafter's) is in the store, and in the
    # Airflow home's store a second run of these tests would find it still open and route around it.
    url = f"sqlite:///{tmp_path_factory.mktemp('routing-store') / 'baton_store.db'}"
    store = EventStore(engine_for(url))
    upgrade(store.engine)
    with OpenAICompatibleServer({"verdict": "go"}) as server:
        conn = {
            "conn_type": "pydanticai",
            "host": server.url + "/invalid/v1",
            "password": "sk-routing-test",
            "extra": {"model": "openai-chat:gpt-bad"},
        }
        run, results, output = run_dag_test_in_subprocess(
            FIXTURE_DAGS,
            "baton-test-fixtures",
            "routing",
            env={"AIRFLOW_CONN_LOCAL_LLM_INVALID": json.dumps(conn), "AIRFLOW_CONN_BATON_STORE": url},
        )
    events = list(store.read(run.run_id))
    return run, results, events, output


def test_a_failing_agent_is_replaced_on_the_next_try_and_tripped_by_its_breaker(routing_run):
    run, results, events, _ = routing_run
    draft = [e for e in events if e.step == "draft"]
    selected = [(e.try_number, e.agent) for e in draft if e.type == "agent.selected"]
    assert selected == [(1, "alpha_drafter"), (2, "beta_drafter")]
    failed = next(e for e in draft if e.type == "step.failed")
    assert (failed.try_number, failed.agent, failed.payload["will_retry"]) == (1, "alpha_drafter", True)
    assert "gave no valid output for step 'draft'" in failed.payload["error"]
    assert failed.payload["error_class"] == "OutputInvalid"  # what the monitor's schema_failure_rate counts
    opened = [e for e in events if e.type == "agent.breaker_opened"]
    assert [(e.step, e.payload["agent"], e.payload["failures"]) for e in opened] == [
        ("draft", "alpha_drafter", 1)
    ]
    second = next(e for e in draft if e.type == "agent.selected" and e.try_number == 2)
    assert second.payload["excluded"] == {"alpha_drafter": "failed try 1 of this step"}
    assert results["draft"][0] == "success" and results["draft"][1]["verdict"] in ("go", "hold")


def test_a_fan_out_is_mapped_over_batches_and_routed_around_the_open_breaker(routing_run):
    run, results, events, _ = routing_run
    planned = sorted(
        (e.map_index, e.payload["batch"])
        for e in events
        if e.type == "fanout.planned" and e.step == "per_lead"
    )
    assert planned == [(0, [0, 4]), (1, [4, 8]), (2, [8, 12]), (3, [12, 14])]
    assert {
        e.payload["concurrency"] for e in events if e.type == "fanout.planned" and e.step == "per_lead"
    } == {2}
    routed = [e for e in events if e.type == "agent.selected" and e.step == "per_lead"]
    assert len(routed) == LEADS and {e.agent for e in routed} == {"beta_drafter"}
    for e in routed:
        assert e.payload["excluded"]["alpha_drafter"].startswith("circuit breaker open until ")
    done = [e for e in events if e.type == "subtask.succeeded" and e.step == "per_lead"]
    assert len({e.payload["subtask"] for e in done}) == LEADS
    assert Counter(e.map_index for e in done) == {0: 4, 1: 4, 2: 4, 3: 2}


def test_a_fan_out_whose_only_agent_is_out_continues_with_the_failures(routing_run):
    run, results, events, output = routing_run
    state, review = results["legal_review"]
    assert state == "success"
    assert (review["results"], review["total"], len(review["failures"])) == ([], LEADS, LEADS)
    first = review["failures"][0]
    assert [f["id"] for f in review["failures"]] == [lead["id"] for lead in results["leads"][1]["leads"]]
    assert first["error"].startswith(
        "SubtaskError: every agent with ['legal'] is left out: alpha_drafter: circuit breaker open until "
    )
    failed = [e for e in events if e.type == "subtask.failed" and e.step == "legal_review"]
    assert len(failed) == LEADS and all(e.payload["attempt"] == 0 for e in failed)
    assert "subtask.started" not in {e.type for e in events if e.step == "legal_review"}
    # the join reads both fan-outs: 14 results of per_lead (all beta_drafter's), 14 failed reviews
    assert results["tally"][1]["text"].endswith(
        f": {LEADS} assessed by beta_drafter; {LEADS} reviews failed."
    )
    assert run.state == "success"


def test_a_learned_route_and_a_steps_variant_in_a_real_run(routing_run):
    """learn: the policy chooses among the agents that may be called (alpha's breaker is open: beta alone),
    and says so in agent.selected; variants: the run's arm is recorded (its key by hash) and the step
    runs as that arm has it."""
    run, results, events, _ = routing_run
    (selected,) = [e for e in events if e.step == "learned_note" and e.type == "agent.selected"]
    learned = selected.payload["learned"]
    assert (selected.agent, learned["policy"], list(learned["arms"])) == (
        "beta_drafter", "discounted-thompson", ["beta_drafter"]
    )  # fmt: skip
    assert selected.payload["excluded"]["alpha_drafter"].startswith("circuit breaker open until ")
    assert results["learned_note"][0] == "success"
    (assigned,) = [e for e in events if e.step == "brief" and e.type == "variant.assigned"]
    assert assigned.payload["experiment"] == "routing.brief" and assigned.payload["how"] == "assigned"
    assert assigned.payload["variant"] in ("plain", "concise") and len(assigned.payload["key_sha256"]) == 16
    assert results["brief"][0] == "success" and run.state == "success"
