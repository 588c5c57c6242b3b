"""A runbook's escalate step as a Required Action (baton.ops.monitor.paging): the question a person reads, the
run it starts over Airflow's REST API (a local server answering as Airflow; the real one:
tests/integration/test_airflow.py), and what each answer does to the incident, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from baton.ops.incidents import Action
from baton.ops.monitor import loop, paging, record
from baton.spec.monitoring import Monitoring
from tests.ops.test_airflow_api import _Api
from tests.ops.test_monitor import _calls

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def opened(clean):
    """A store with one open failure_rate incident on agent:gamma (a tick over a burst of its failures)."""
    store = clean
    store.append(_calls("gamma", NOW - timedelta(minutes=10), 10, 6, 0.5, seed=3))  # half of 60 fail
    report = loop.tick(store, Monitoring(), NOW)
    (incident_id,) = {t.incident_id for t in report.transitions if t.where == "agent:gamma"}
    return store, incident_id


def _book(store):
    with store.engine.begin() as conn:
        return record.read_book(conn)


def _action(incident_id: str) -> Action:
    return Action(
        id=f"{incident_id}/1", incident_id=incident_id, step=1, do="escalate", target="agent:gamma",
        params={"to": "on-call"},
    )  # fmt: skip


def test_the_question_says_what_where_how_often_and_why(opened):
    store, incident_id = opened
    asked = paging.question(_action(incident_id), _book(store))
    assert asked["subject"] == f"Incident {incident_id}: failure_rate at agent:gamma (critical)"
    assert "failure_rate at agent:gamma, severity critical, 1 occurrence(s)" in asked["body"]
    assert re.search(r"\d+ of 60 calls bad in the last 15m", asked["body"])  # the detector's reason
    assert f"`baton incident show {incident_id}`" in asked["body"]
    # an incident the book no longer has (resolved meanwhile): still a question, naming it
    gone = paging.question(_action("inc-000000000000"), _book(store))
    assert gone == {"subject": "Incident inc-000000000000 at agent:gamma", "body": ""}


def test_without_the_connection_the_escalation_is_slack_alone_and_says_so(opened, monkeypatch):
    store, incident_id = opened
    monkeypatch.delenv("AIRFLOW_CONN_BATON_AIRFLOW_API", raising=False)
    assert paging.request(_action(incident_id), _book(store)) == (
        "escalated to on-call on Slack; a Required Action in Airflow needs the connection baton_airflow_api"
    )


@pytest.mark.parametrize(("status", "asked"), [(200, "asked"), (409, "had asked already")])
def test_the_escalation_starts_one_run_named_after_the_incident_step(opened, monkeypatch, status, asked):
    store, incident_id = opened
    server = _Api(b'{"dag_run_id": "x"}', status=status)
    conn = {"conn_type": "http", "host": server.url, "login": "admin", "password": "Qx4-escalation-pw"}
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps(conn))
    try:
        outcome = paging.request(_action(incident_id), _book(store))
    finally:
        server.close()
    run_id = f"incident__{incident_id}__1"
    assert outcome == (
        f"escalated to on-call: Slack, and {asked} on Airflow's Required Actions page "
        f"(baton_incident_escalation run {run_id})"
    )
    assert server.paths[-1] == "/api/v2/dags/baton_incident_escalation/dagRuns"
    body = json.loads(server.requests[-1])
    assert (body["dag_run_id"], body["logical_date"], body["conf"]["incident_id"]) == (
        run_id,
        None,
        incident_id,
    )
    assert body["conf"]["subject"].startswith(f"Incident {incident_id}: failure_rate at agent:gamma")


def test_each_answer_acts_on_the_incident_under_the_persons_name(opened):
    store, incident_id = opened
    person = {"id": "7", "name": "dana"}
    leave = {"chosen_options": ["Leave it to the runbook"], "responded_by_user": person}
    assert (
        paging.apply_answer(store, incident_id, leave) == f"dana left incident {incident_id} to its runbook"
    )
    ack = {"chosen_options": ["Acknowledge"], "responded_by_user": person}
    assert paging.apply_answer(store, incident_id, ack) == f"dana acknowledged incident {incident_id}"
    assert paging.apply_answer(store, incident_id, ack).endswith("(it was so already)")
    stop = {"chosen_options": ["Stop the runbook"], "responded_by_user": {"id": "8"}}
    assert paging.apply_answer(store, incident_id, stop) == f"8 stopped the runbook of incident {incident_id}"
    events = [(e.type, e.payload.get("detail")) for e in record.timeline(store, incident_id)]
    assert ("incident.acknowledged", {"by": "dana"}) in events and (
        "incident.updated",
        {"stopped_by": "8"},
    ) in events
    # an answer that comes after the incident resolved changes nothing, and says why
    late = paging.apply_answer(store, "inc-000000000000", ack)
    assert late.startswith("dana's answer (Acknowledge) changed nothing: no open incident 'inc-000000000000'")
