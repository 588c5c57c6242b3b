"""The Coordination page's actions in-process: a reassignment is checked against the step's candidates and
recorded (``step.reassigned`` for the next try, ``action.taken`` under the person's name); a circuit opened
and closed; an action Airflow could not carry out is recorded as not done and answered with Airflow's
error; hostile bodies and paths refused. (Trigger, stop and compensation on a running Airflow, through the
page in a browser: tests/integration/test_pages.py.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from baton.events.event import Event
from baton.events.store import EventStore

BASE = "/api/actions/dags/parallel_feature_delivery/runs"


@pytest.fixture
def run(airflow_db, dags) -> str:
    store = EventStore.from_airflow()
    run_id = f"manual__actions_{id(store)}"
    store.append([
        Event(type="run.started", run_id=run_id, workflow="parallel_feature_delivery", payload={}),
        Event(type="step.started", run_id=run_id, workflow="parallel_feature_delivery", step="integrate", try_number=1),
    ])  # fmt: skip
    return run_id


def _taken(run_target: str) -> list[dict]:
    return [e.payload for e in EventStore.from_airflow().read(f"action:{run_target}", types=["action.taken"])]


def test_a_routed_steps_next_try_is_given_to_a_candidate_and_recorded(client, as_role, run):
    answer = client.post(f"{BASE}/{run}/steps/integrate/reassign", json={"agent": "testing_specialist", "reason": "r"},
                         **as_role("user"))  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "run_id": run,
        "step": "integrate",
        "agent": "testing_specialist",
        "try": 2,
        "retry_now": False,
    }
    (event,) = EventStore.from_airflow().read(run, types=["step.reassigned"])
    assert (event.step, event.payload["agent"], event.payload["after_try"], event.payload["by"]) == (
        "integrate",
        "testing_specialist",
        1,
        "a_user",
    )
    (taken,) = _taken(f"parallel_feature_delivery/{run}/integrate")
    assert (taken["verb"], taken["by"], taken["ok"], taken["detail"]) == (
        "reassign",
        "a_user",
        True,
        "try 2 -> testing_specialist",
    )


@pytest.mark.parametrize(
    ("step", "body", "status", "said"),
    [
        ("integrate", {"agent": "frontend_specialist"}, 409,
         "agent 'frontend_specialist' may not do integrate: its candidates are testing_specialist"),
        ("decompose", {"agent": "testing_specialist"}, 409, "'decompose' is not a routed step (one agent, no"),
        ("implement", {"agent": "testing_specialist"}, 409, "'implement' is not a routed step (one agent, no"),
        ("nope", {"agent": "testing_specialist"}, 409, "'nope' is not a routed step"),
        ("integrate", {"agent": ""}, 422, "String should have at least 1 character"),
        ("integrate", {"agent": "x" * 251}, 422, "String should have at most 250 characters"),
        ("integrate", {"agent": "testing_specialist", "sql": "drop table"}, 422, "Extra inputs are not permitted"),
        ("integrate", {"agent": ["a"]}, 422, "Input should be a valid string"),
    ],
)  # fmt: skip
def test_a_bad_reassignment_is_refused_naming_why(client, as_role, run, step, body, status, said):
    answer = client.post(f"{BASE}/{run}/steps/{step}/reassign", json=body, **as_role("user"))
    assert answer.status_code == status and said in answer.text, answer.text[:500]
    assert list(EventStore.from_airflow().read(run, types=["step.reassigned"])) == []


def test_a_reassignment_of_an_unknown_run_is_404(client, as_role, airflow_db, dags):
    answer = client.post(
        f"{BASE}/manual__nope/steps/integrate/reassign", json={"agent": "a"}, **as_role("user")
    )
    assert answer.status_code == 404
    assert "no run 'manual__nope' of parallel_feature_delivery in Baton's events" in answer.text


def test_a_run_of_another_dag_cannot_be_reassigned_through_this_one(client, as_role, airflow_db, dags):
    other = "manual__of_another_dag"
    EventStore.from_airflow().append(
        [Event(type="run.started", run_id=other, workflow="lead_followup", payload={})]
    )
    answer = client.post(f"{BASE}/{other}/steps/integrate/reassign", json={"agent": "testing_specialist"},
                         **as_role("user"))  # fmt: skip
    assert answer.status_code == 404 and f"no run '{other}' of parallel_feature_delivery" in answer.text
    assert list(EventStore.from_airflow().read(other, types=["step.reassigned"])) == []


def test_a_circuit_is_opened_and_closed_and_each_is_recorded(client, as_role, airflow_db):
    from baton.coordination.load import Breakers

    path = "/api/actions/agents/market_scout/circuit"
    opened = client.post(path, json={"open": True, "minutes": 5}, **as_role("user"))
    assert opened.status_code == 200 and opened.json()["detail"].startswith("open until ")
    assert "market_scout" in Breakers(EventStore.from_airflow()).open_until(["market_scout"])
    closed = client.post(path, json={"open": False}, **as_role("admin"))
    assert closed.json()["detail"] == "closed"
    assert (
        client.post(path, json={"open": False}, **as_role("admin")).json()["detail"] == "was closed already"
    )
    assert [t["verb"] for t in _taken("agent:market_scout")][-3:] == [
        "open_circuit",
        "close_circuit",
        "close_circuit",
    ]
    for body in ({"open": True, "minutes": 0}, {"open": True, "minutes": 10**9}, {"open": "yes please"}, {}):
        assert client.post(path, json=body, **as_role("user")).status_code == 422, body
    assert client.post(
        "/api/actions/agents/..%2Fx/circuit", json={"open": True}, **as_role("user")
    ).status_code in (404, 422)


def test_a_circuit_for_an_agent_the_roster_does_not_name_is_refused_and_leaves_no_row(
    client, as_role, airflow_db, dags
):
    from baton.coordination.load import Breakers

    path = "/api/actions/agents/ghost_agent/circuit"
    refused = client.post(path, json={"open": True, "minutes": 5}, **as_role("user"))
    assert refused.status_code == 404, refused.text
    assert "no agent 'ghost_agent' in the roster (agents.yaml): its agents are " in refused.json()["detail"]
    assert "market_scout" in refused.json()["detail"]
    assert Breakers(EventStore.from_airflow()).open_until(["ghost_agent"]) == {}
    assert _taken("agent:ghost_agent") == []
    # closing is never refused: a circuit left by an agent since removed from the roster can be closed
    closed = client.post(path, json={"open": False}, **as_role("user"))
    assert (closed.status_code, closed.json()["detail"]) == (200, "was closed already")


def test_a_try_that_cannot_come_is_not_reassigned(client, as_role, run):
    store = EventStore.from_airflow()
    store.append([Event(type="step.succeeded", run_id=run, workflow="parallel_feature_delivery", step="integrate",
                        try_number=1)])  # fmt: skip
    path = f"{BASE}/{run}/steps/integrate/reassign"
    now = client.post(path, json={"agent": "testing_specialist", "retry_now": True}, **as_role("user"))
    assert now.status_code == 409, now.text
    assert now.json()["detail"] == (
        "'integrate' succeeded in try 1: starting it now would call an agent again and leave the steps after it "
        "as they are; clear it with its downstream tasks in Airflow to redo them"
    )
    assert list(store.read(run, types=["step.reassigned"])) == []
    store.append([Event(type="run.succeeded", run_id=run, workflow="parallel_feature_delivery", payload={})])
    ended = client.post(path, json={"agent": "testing_specialist"}, **as_role("user"))
    assert ended.status_code == 409, ended.text
    assert ended.json()["detail"] == (
        f"run {run} has ended (success): no try of 'integrate' is to come, so none can be reassigned"
    )
    assert list(store.read(run, types=["step.reassigned"])) == []
    assert _taken(f"parallel_feature_delivery/{run}/integrate") == []


def test_an_action_airflow_cannot_carry_out_is_answered_with_its_error_and_recorded_as_not_done(
    client, as_role, airflow_db
):
    # In-process there is no Airflow API server behind the test client's address: Airflow cannot be reached.
    answer = client.post("/api/actions/dags/lead_followup/trigger", json={"conf": {}}, **as_role("user"))
    assert (
        answer.status_code == 502 and "Airflow's API at http://testserver could not be reached" in answer.text
    )
    (taken,) = [
        t for t in EventStore.from_airflow().read(types=["action.taken"]) if t.payload["verb"] == "trigger"
    ][-1:]
    assert (taken.payload["ok"], taken.payload["by"]) == (False, "a_user")
    big = {"conf": {"x": "y" * 100_001}}
    answer = client.post("/api/actions/dags/lead_followup/trigger", json=big, **as_role("user"))
    assert answer.status_code == 413 and "the inputs are over 100,000 bytes as JSON" in answer.text
    bad = client.post("/api/actions/dags/lead;drop/trigger", json={"conf": {}}, **as_role("user"))
    assert bad.status_code == 422
    stop = client.post(f"{BASE}/r/stop", json={"reason": ""}, **as_role("user"))
    assert stop.status_code == 422 and "String should have at least 1 character" in stop.text


def test_people_reassigning_at_once_each_record_theirs_and_the_last_one_counts(client, as_role, run):
    def one(_: int) -> int:
        path, body = f"{BASE}/{run}/steps/integrate/reassign", {"agent": "testing_specialist"}
        return client.post(path, json=body, **as_role("user")).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(8)))
    assert codes == [200] * 8
    assert len(list(EventStore.from_airflow().read(run, types=["step.reassigned"]))) == 8


def test_settling_an_experiment_needs_one_and_its_proposal(client, as_role, airflow_db, dags):
    import shutil

    from tests.conftest import FIXTURES

    shutil.copytree(FIXTURES / "agent_paths", dags, dirs_exist_ok=True)  # routing.yaml's brief has variants
    path = "/api/actions/dags/routing/experiments/{}/settle"
    nothing = client.post(path.format("draft"), json={"accept": True}, **as_role("user"))
    assert nothing.status_code == 404 and "no experiment on step 'draft' of routing" in nothing.text
    early = client.post(path.format("brief"), json={"accept": True}, **as_role("user"))
    assert (
        early.status_code == 409
        and "experiment routing.brief has no decision waiting for a person" in early.text
    )
    assert client.post(path.format("brief"), json={"accept": "maybe"}, **as_role("user")).status_code == 422
    assert client.post(path.format("brief"), json={"accept": True}, **as_role("viewer")).status_code == 403
