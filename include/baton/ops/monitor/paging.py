"""Paging a person about an incident: a runbook's ``escalate`` step as a Required Action in Airflow. A
person answers on Airflow's Required Actions page (or its REST API, or ``baton approve``) and the answer
acts on the incident. (A workflow step's questions to a person are :mod:`baton.coordination.questions`';
this module reads its answers the same way.)

The step triggers a run of the bundled ``baton_incident_escalation`` DAG (``dags/baton_incident_escalation.py``)
over Airflow's REST API (connection ``baton_airflow_api``) with the incident's id and evidence; its
``ask`` task waits for a person, whose answer :func:`apply_answer` turns into the incident's event under
their name: acknowledge (no more notifications, its escalations skipped), stop its runbook, or leave it
to the runbook. The run's id is the incident step's, so a step carried out twice asks once. Without the
connection the step is the Slack message alone, and its outcome says so.
"""

from __future__ import annotations

from typing import Any

from baton.coordination.questions import Answer
from baton.events.store import EventStore
from baton.ops.airflow_api import CONN_ID, AirflowApi
from baton.ops.incidents import Action, Book, IncidentError
from baton.ops.monitor.record import person_acts

DAG_ID = "baton_incident_escalation"
ACKNOWLEDGE, STOP, LEAVE = "Acknowledge", "Stop the runbook", "Leave it to the runbook"
OPTIONS = (ACKNOWLEDGE, STOP, LEAVE)
VERBS = {ACKNOWLEDGE: "ack", STOP: "stop"}
MAX_BODY = 4_000  # characters of evidence shown to the person


def question(action: Action, book: Book | None) -> dict[str, str]:
    """The subject and body the person reads: what, where, how often, why (the detector's reason)."""
    try:
        incident = book.by_id(action.incident_id) if book is not None else None
    except IncidentError:
        incident = None
    if incident is None:
        return {"subject": f"Incident {action.incident_id} at {action.target}", "body": ""}
    reason = str((incident.evidence or {}).get("reason") or "")
    body = (
        f"{incident.kind} at {incident.where}, severity {incident.severity}, {incident.count} occurrence(s) "
        f"since {incident.opened_at:%Y-%m-%d %H:%M} UTC.\n\n{reason}\n\n"
        f"{ACKNOWLEDGE}: you are on it (no more messages, its escalations are skipped). {STOP}: its "
        f"runbook does nothing more, not even its undoing at resolution. {LEAVE}: nothing changes.\n"
        f"`baton incident show {incident.id}` has its timeline."
    )
    subject = f"Incident {incident.id}: {incident.kind} at {incident.where} ({incident.severity})"
    return {"subject": subject[:300], "body": body[:MAX_BODY]}


def request(action: Action, book: Book | None) -> str:
    """Ask a person on Airflow's Required Actions page: the outcome, for the incident's record."""
    to = action.params.get("to", "a person")
    api = AirflowApi.from_connection()
    if api is None:
        return f"escalated to {to} on Slack; a Required Action in Airflow needs the connection {CONN_ID}"
    conf = {"incident_id": action.incident_id, **question(action, book)}
    run_id = f"incident__{action.id.replace('/', '__')}"
    created = api.trigger(DAG_ID, run_id, conf)
    asked = "asked" if created else "had asked already"
    return f"escalated to {to}: Slack, and {asked} on Airflow's Required Actions page ({DAG_ID} run {run_id})"


def apply_answer(store: EventStore, incident_id: str, answer: dict[str, Any]) -> str:
    """What the person chose, done on the incident under their name (what the DAG's ``apply`` task runs)."""
    reply = Answer.of(answer, "incident", {})  # as a step's answer is read: who, and what they chose
    chosen, by = reply.chosen, reply.by
    verb = VERBS.get(chosen[0]) if chosen else None
    if verb is None:
        return f"{by or 'a person'} left incident {incident_id} to its runbook"
    try:
        changed = person_acts(store, incident_id, verb, by)
    except IncidentError as error:  # resolved meanwhile, or not a person's name: said, not failed
        return f"{by}'s answer ({chosen[0]}) changed nothing: {error}"
    done = "acknowledged" if verb == "ack" else "stopped the runbook of"
    return f"{by} {done} incident {incident_id}" + ("" if changed else " (it was so already)")
